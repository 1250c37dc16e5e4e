import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a short command (a path, or a name looked up in PATH) to its end and
/// returns its exit status and output (stdout, then stderr, each through a
/// file), with posix_spawn and a blocking
/// waitpid. Not Foundation's `Process`: its `waitUntilExit` needs a dispatch
/// worker to learn of the exit, and on a 2-core machine two callers blocked
/// in it on Swift concurrency's two threads wait for ever (seen: the unit
/// suites hung with both threads in poll()).
public enum Subprocess {
    public static func run(
        _ executable: String, _ arguments: [String], environment extra: [String: String] = [:]
    ) throws -> (status: Int32, output: String) {
        let stem = NSTemporaryDirectory() + "parley-subprocess-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let outputPath = stem + ".out", errorPath = stem + ".err"
        defer {
            unlink(outputPath)
            unlink(errorPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        // The caller's environment, with `extra` (a password, say: never on the command line).
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in extra { environment[name] = value }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw FaultError("cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw FaultError("waitpid for \(executable) failed: \(String(cString: strerror(errno)))") }
        }
        let output = ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
        // WIFEXITED / WEXITSTATUS, spelled out: Swift does not import the macros.
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
    }
}

/// What a fault could not do: start a command, set up or lift a partition.
public struct FaultError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
