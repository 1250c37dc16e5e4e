import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix
import ParleyProto
import ParleyWire

/// Where a client connects: a gate's TCP port, its WebSocket URL, or its
/// long-poll URL (`http://host:port/lp`).
public enum GateAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case webSocket(url: String)
    case longPoll(url: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): "tcp://\(host):\(port)"
        case .webSocket(let url), .longPoll(let url): url
        }
    }
}

/// One open connection to a gate: frames out, frames in.
///
/// `inbound` ends when the connection closes (throwing if it failed).
struct FrameTransport: Sendable {
    let inbound: AsyncThrowingStream<Parley_Frame, any Error>
    private let outbound: AsyncStream<Parley_Frame>.Continuation

    init(inbound: AsyncThrowingStream<Parley_Frame, any Error>, outbound: AsyncStream<Parley_Frame>.Continuation) {
        self.inbound = inbound
        self.outbound = outbound
    }

    func send(_ frame: Parley_Frame) { outbound.yield(frame) }

    /// Closes after the frames already sent are written.
    func close() { outbound.finish() }

    /// Largest frame a client accepts: sync pages can be big.
    static let maxInboundFrame = 16 * 1024 * 1024

    static func connect(to address: GateAddress, logger: Logger) async throws -> FrameTransport {
        switch address {
        case .tcp(let host, let port): try await tcp(host: host, port: port)
        case .webSocket(let url): try await webSocket(url: url, logger: logger)
        case .longPoll(let url): try LongPollTransport.open(url: url)
        }
    }

    private static func tcp(host: String, port: Int) async throws -> FrameTransport {
        let channel = try await ClientBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(3))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(maxFrameSize: maxInboundFrame))
                    )
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let (inbound, received) = AsyncThrowingStream<Parley_Frame, any Error>.makeStream()
        let (outgoing, outbound) = AsyncStream<Parley_Frame>.makeStream()
        // The connection's own task: it owns the channel until both directions end.
        Task {
            do {
                try await channel.executeThenClose { frames, writer in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await frame in outgoing { try await writer.write(frame.encoded()) }
                            throw CancellationError()  // local close: stop reading too
                        }
                        group.addTask {
                            for try await payload in frames { received.yield(try Parley_Frame.decodeAny(payload)) }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                received.finish()
            } catch is CancellationError {
                received.finish()
            } catch {
                received.finish(throwing: error)
            }
        }
        return FrameTransport(inbound: inbound, outbound: outbound)
    }

    private static func webSocket(url: String, logger: Logger) async throws -> FrameTransport {
        let (inbound, received) = AsyncThrowingStream<Parley_Frame, any Error>.makeStream()
        let (outgoing, outbound) = AsyncStream<Parley_Frame>.makeStream()
        let (opened, open) = AsyncStream<Void>.makeStream()
        Task {
            do {
                try await WebSocketClient.connect(
                    url: url,
                    configuration: .init(maxFrameSize: maxInboundFrame),
                    logger: logger
                ) { messages, writer, _ in
                    open.yield()
                    open.finish()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await frame in outgoing { try await writer.write(.binary(frame.encoded())) }
                            try await writer.close(.normalClosure, reason: nil)
                        }
                        group.addTask {
                            for try await message in messages.messages(maxSize: maxInboundFrame) {
                                guard case .binary(let payload) = message else { continue }
                                received.yield(try Parley_Frame.decodeAny(payload))
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                received.finish()
            } catch {
                received.finish(throwing: error)
            }
            open.finish()
        }
        var iterator = opened.makeAsyncIterator()
        guard await iterator.next() != nil else {
            throw ClientConnectionError.closed("WebSocket upgrade to \(url) failed")
        }
        return FrameTransport(inbound: inbound, outbound: outbound)
    }
}

extension Parley_Frame {
    /// Decodes a frame from the server, keeping unknown body types (a newer server) as an empty body.
    static func decodeAny(_ payload: ByteBuffer) throws -> Parley_Frame {
        try Parley_Frame(serializedBytes: Array(payload.readableBytesView))
    }
}

/// Why a client request could not be answered.
public enum ClientConnectionError: Error, Sendable, CustomStringConvertible {
    case closed(String)
    case timedOut
    case notConnected

    public var description: String {
        switch self {
        case .closed(let why): "connection closed: \(why)"
        case .timedOut: "request timed out"
        case .notConnected: "not connected"
        }
    }
}
