import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The machine's processes as /proc shows them: what a drill kills and
/// waits on. A zombie counts as dead: it has exited, and on a machine whose
/// init does not reap orphans it may linger for good.
public enum ProcessTable {
    /// Whether `pid` names a process that has not exited.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let fields = statFields(pid) else { return false }
        return fields.first != "Z"
    }

    /// Every live descendant of `root`.
    public static func descendants(of root: Int32) -> [Int32] {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let fields = statFields(pid), fields.count > 1, let parent = Int32(fields[1]) else { continue }
            children[parent, default: []].append(pid)
        }
        var found: [Int32] = []
        var queue = [root]
        while let next = queue.popLast() {
            let direct = children[next] ?? []
            found += direct
            queue += direct
        }
        return found
    }

    /// SIGKILL to every process of `roots` and their descendants at once (as
    /// when a machine loses power), then waits up to `grace` for them to die;
    /// returns those still alive.
    @discardableResult
    public static func killTrees(_ roots: [Int32], grace: Duration = .seconds(5)) async -> [Int32] {
        let members = roots.filter(isAlive).flatMap { [$0] + descendants(of: $0) }
        for member in members { kill(member, SIGKILL) }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, members.contains(where: isAlive) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return members.filter(isAlive)
    }

    /// The fields of /proc/<pid>/stat after the command name: state, ppid, ...
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let afterName = stat.range(of: ") ", options: .backwards)
        else { return nil }
        return stat[afterName.upperBound...].split(separator: " ")
    }
}

/// A killed postmaster's lock files: when its process is dead or a zombie
/// (nobody reaped it), they would refuse a new server on the same data
/// directory and port. Removing them is what a crash-restart needs.
public enum StalePostgresLocks {
    /// Removes `postmaster.pid` and the socket's lock file if their owner is
    /// not alive; returns the dead owner's pid, nil when there was nothing stale.
    @discardableResult
    public static func remove(dataDirectory: String, socketDirectory: String, port: Int) -> Int32? {
        let lock = dataDirectory + "/postmaster.pid"
        guard let owner = (try? String(contentsOfFile: lock, encoding: .utf8))?.split(separator: "\n").first.flatMap({ Int32($0) }),
              !ProcessTable.isAlive(owner)
        else { return nil }
        try? FileManager.default.removeItem(atPath: lock)
        try? FileManager.default.removeItem(atPath: "\(socketDirectory)/.s.PGSQL.\(port).lock")
        return owner
    }
}
