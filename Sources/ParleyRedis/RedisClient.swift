import NIOCore
import NIOPosix
import Synchronization

/// An async Redis client over one pipelined connection, reconnecting on demand.
///
/// Concurrent callers share the connection: their commands are pipelined and
/// replies matched in order, so nothing waits for a round trip it does not need.
///
/// ```swift
/// let redis = RedisClient(host: "127.0.0.1", port: 6379)
/// try await redis.send("SET", "k", "v")
/// let replies = try await redis.pipeline([["INCR", "a"], ["INCR", "b"]])
/// ```
public final class RedisClient: Sendable {
    public let host: String
    public let port: Int
    /// Sent with AUTH on every new connection (`requirepass`); never logged.
    private let password: String?
    private let group: any EventLoopGroup
    private let channel: Mutex<EventLoopFuture<any Channel>?>

    public init(host: String, port: Int, password: String? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.password = password
        self.group = group
        self.channel = Mutex(nil)
    }

    @discardableResult
    public func send(_ arguments: String...) async throws -> RESPValue {
        try await pipeline([arguments])[0]
    }

    @discardableResult
    public func send(_ arguments: [String]) async throws -> RESPValue {
        try await pipeline([arguments])[0]
    }

    /// Sends several commands in one write and returns their replies in order.
    /// An error reply is returned as `.error`, not thrown, so one failing
    /// command does not hide the others' results.
    public func pipeline(_ commands: [[String]]) async throws -> [RESPValue] {
        try await pipeline(bytes: commands.map { $0.map { Array($0.utf8) } })
    }

    public func pipeline(bytes commands: [[[UInt8]]]) async throws -> [RESPValue] {
        try await pipeline(bytes: commands, on: try await connectedChannel())
    }

    func pipeline(bytes commands: [[[UInt8]]], on channel: any Channel) async throws -> [RESPValue] {
        let futures = try await channel.eventLoop.submit {
            let futures = commands.map { arguments in
                let reply = channel.eventLoop.makePromise(of: RESPValue.self)
                // A write to a connection that has closed never reaches the
                // handler (NIO has removed it), and nothing would fail the
                // reply: the caller waited for ever (seen in
                // RedisClientTests.reconnects…). The failed write fails it.
                let written = channel.eventLoop.makePromise(of: Void.self)
                written.futureResult.whenFailure { reply.fail($0) }
                channel.write(RedisCommand(arguments: arguments, promise: reply), promise: written)
                return reply.futureResult
            }
            channel.flush()
            return futures
        }.get()
        var replies: [RESPValue] = []
        replies.reserveCapacity(futures.count)
        for future in futures { replies.append(try await future.get()) }
        return replies
    }

    public func close() async {
        let future = channel.withLock { current -> EventLoopFuture<any Channel>? in
            defer { current = nil }
            return current
        }
        if let channel = try? await future?.get() { try? await channel.close() }
    }

    func connectedChannel() async throws -> any Channel {
        let future = channel.withLock { current -> EventLoopFuture<any Channel> in
            if let existing = current { return existing }
            let connecting = makeConnection()
            current = connecting
            return connecting
        }
        do {
            let channel = try await future.get()
            if channel.isActive { return channel }
            forget(future)
            return try await connectedChannel()
        } catch {
            forget(future)
            throw RedisError("cannot connect to \(host):\(port): \(error)")
        }
    }

    private func forget(_ future: EventLoopFuture<any Channel>) {
        channel.withLock { current in
            if current === future { current = nil }
        }
    }

    private func makeConnection() -> EventLoopFuture<any Channel> {
        let connected = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RESPChannelHandler())
                }
            }
            .connect(host: host, port: port)
        guard let password else { return connected }
        // The connection is handed out only once the server took the password.
        return connected.flatMap { channel in
            let reply = channel.eventLoop.makePromise(of: RESPValue.self)
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { reply.fail($0) }
            channel.writeAndFlush(RedisCommand(arguments: [Array("AUTH".utf8), Array(password.utf8)], promise: reply), promise: written)
            return reply.futureResult.flatMapThrowing { answer in
                if case .error(let message) = answer {
                    channel.close(promise: nil)
                    throw RedisError("AUTH refused: \(message)")
                }
                return channel
            }
        }
    }
}
