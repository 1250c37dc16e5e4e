import Foundation
import ParleyFault
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A server process started by a test, stopped by the test even when it fails.
///
/// Every child's pid is also written to `$PARLEY_TEST_RUN_DIR/pids`, so the
/// test script can kill what a crashed test process left behind.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched through Foundation's thread-safe
    // Process API; `name` and `logPath` are immutable.
    public let name: String
    public let logPath: String
    private let process: Process

    public init(name: String, executable: String, arguments: [String], logPath: String, environment: [String: String]? = nil) throws {
        self.name = name
        self.logPath = logPath
        // Appended to: a process restarted by a test keeps its earlier log.
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        TestRun.recordPID(process.processIdentifier)
    }

    public var pid: Int32 { process.processIdentifier }

    /// False once the process has exited, even if it is a zombie nobody has
    /// reaped yet (Foundation's `Process` has been seen not to notice a
    /// crashed child; waiting on it would hang the test run).
    public var isRunning: Bool { process.isRunning && ProcessTable.isAlive(pid) }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    public func stop(grace: Duration = .seconds(5)) async {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        await waitForExit(within: grace)
        if isRunning {
            kill(pid, SIGKILL)
            await waitForExit(within: .seconds(5))
        }
    }

    /// SIGKILL: the process dies without any chance to clean up.
    public func kill9() async {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        await waitForExit(within: .seconds(5))
    }

    /// SIGKILL to the process and every process it started, all at once (a
    /// postmaster and its backends, as when the machine loses power).
    public func kill9Tree() async {
        guard isRunning else { return }
        await ProcessTable.killTrees([pid])
        await waitForExit(within: .seconds(5))
    }

    private func waitForExit(within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while isRunning, ContinuousClock.now < deadline {
            // A cancelled test (over its time limit) must still stop its servers.
            if Task.isCancelled { usleep(20_000) } else { try? await Task.sleep(for: .milliseconds(20)) }
        }
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Per test run: a scratch folder and the pids of every server started.
public enum TestRun {
    public static let directory: String = {
        let base = ProcessInfo.processInfo.environment["PARLEY_TEST_RUN_DIR"] ?? NSTemporaryDirectory() + "parley-tests"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        return base
    }()

    private static let lock = NSLock()

    static func recordPID(_ pid: Int32) {
        lock.lock()
        defer { lock.unlock() }
        let path = directory + "/pids"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write("\(pid)\n".data(using: .utf8)!)
            try? handle.close()
        }
    }

    /// A new empty folder under the run directory.
    public static func scratch(_ prefix: String) throws -> String {
        let path = directory + "/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Free loopback TCP ports for test servers.
///
/// They come from below the kernel's ephemeral range: a port found by
/// binding port 0 lies inside it, and between its release and the server's
/// bind, any outgoing connection on the machine may take it as its local
/// port. Ports are also never handed out twice by one test process.
public enum FreePort {
    private static let handedOut = Mutex(Set<Int>())

    /// Ports below this one are never chosen by the kernel for outgoing connections.
    private static let ephemeralStart: Int = {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
    }()

    public static func next() throws -> Int {
        let candidates = 10_000..<max(ephemeralStart, 20_000)
        for _ in 0..<1_000 {
            let port = Int.random(in: candidates)
            let fresh = handedOut.withLock { $0.insert(port).inserted }
            if fresh, canBind(port) { return port }
        }
        throw TestSupportError("no free port in \(candidates)")
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// True once something accepts TCP connections on the port.
    public static func isAccepting(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// Waits until the port accepts connections, or fails with the server's log.
    public static func waitUntilAccepting(_ port: Int, server: ChildProcess, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isAccepting(port) {
            guard server.isRunning else {
                throw TestSupportError("\(server.name) exited before listening on \(port):\n\(server.log.suffix(3000))")
            }
            guard ContinuousClock.now < deadline else {
                throw TestSupportError("\(server.name) did not listen on \(port) within \(timeout):\n\(server.log.suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(_ timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// The first element of `stream` that `matches`, or nil if none comes within
/// `timeout`. The stream's iteration ends with this call (an `AsyncStream`
/// finishes when its waiting consumer is cancelled): use it last.
public func first<Element: Sendable>(
    of stream: AsyncStream<Element>, within timeout: Duration = .seconds(30), where matches: @escaping @Sendable (Element) -> Bool
) async -> Element? {
    await withTaskGroup(of: Element?.self) { group in
        group.addTask {
            for await element in stream where matches(element) { return element }
            return nil
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
