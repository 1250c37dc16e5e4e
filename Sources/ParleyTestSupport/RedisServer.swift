import Foundation

/// A real, ephemeral Redis server on a free loopback port, persisting nothing.
public final class RedisServer: Sendable {
    public let port: Int
    let process: ChildProcess

    public static func start(name: String = "redis") async throws -> RedisServer {
        guard let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw TestSupportError("redis-server not found: run ops/setup") }
        let root = try TestRun.scratch(name)
        let port = try FreePort.next()
        let process = try ChildProcess(
            name: name, executable: executable,
            arguments: ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", root],
            logPath: root + "/redis.log"
        )
        do {
            try await FreePort.waitUntilAccepting(port, server: process)
        } catch {
            await process.stop()
            throw error
        }
        return RedisServer(port: port, process: process)
    }

    private init(port: Int, process: ChildProcess) {
        self.port = port
        self.process = process
    }

    public func stop() async { await process.stop() }
}
