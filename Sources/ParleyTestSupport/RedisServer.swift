import Foundation
import Synchronization

/// A real, ephemeral Redis server on a free loopback port, persisting
/// nothing, taking clients only with its password (`requirepass`), as a
/// deployment's does.
public final class RedisServer: Sendable {
    public let port: Int
    public let password: String
    /// A file holding the password, for region files (`passwordFile`).
    public let passwordFile: String
    private let executable: String
    private let root: String
    private let current: Mutex<ChildProcess>
    var process: ChildProcess { current.withLock { $0 } }

    public static func start(name: String = "redis") async throws -> RedisServer {
        guard let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw TestSupportError("redis-server not found: run ops/setup") }
        let root = try TestRun.scratch(name)
        let password = "redis-\(UUID().uuidString)"
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: root + "/password"))
        let server = try RedisServer(name: name, port: try FreePort.next(), password: password, executable: executable, root: root)
        do {
            try await FreePort.waitUntilAccepting(server.port, server: server.process)
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    private init(name: String, port: Int, password: String, executable: String, root: String) throws {
        self.port = port
        self.password = password
        self.passwordFile = root + "/password"
        self.executable = executable
        self.root = root
        current = Mutex(try Self.launch(name: name, port: port, executable: executable, root: root))
    }

    /// The password reaches redis-server in a config file, never on its command line.
    private static func launch(name: String, port: Int, executable: String, root: String) throws -> ChildProcess {
        let password = try String(contentsOfFile: root + "/password", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let config = root + "/redis.conf"
        try Data("requirepass \(password)\n".utf8).write(to: URL(fileURLWithPath: config))
        return try ChildProcess(
            name: name, executable: executable,
            arguments: [config, "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", root],
            logPath: root + "/redis.log"
        )
    }

    public func kill9() async { await process.kill9() }

    /// Starts an empty server again on the same port, after `kill9`.
    public func restart() async throws {
        let process = try Self.launch(name: self.process.name, port: port, executable: executable, root: root)
        current.withLock { $0 = process }
        try await FreePort.waitUntilAccepting(port, server: process)
    }

    public func stop() async { await process.stop() }

    /// One command through `redis-cli` (FLUSHALL, XINFO …): its output.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        cli.arguments = ["-p", "\(port)", "--no-auth-warning"] + arguments
        cli.environment = ProcessInfo.processInfo.environment.merging(["REDISCLI_AUTH": password]) { $1 }
        let output = Pipe()
        cli.standardOutput = output
        try cli.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        guard cli.terminationStatus == 0 else { throw TestSupportError("redis-cli \(arguments) exited \(cli.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }
}
