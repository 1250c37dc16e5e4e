import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ParleyProto
import ParleyWire

/// Where a client connects: a gate's TCP port (plaintext or TLS), its
/// WebSocket URL (`ws://` or `wss://`), or its long-poll URL (`http://` or
/// `https://host:port/lp`).
public enum GateAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    /// The TCP port of a gate speaking TLS.
    case tls(host: String, port: Int)
    case webSocket(url: String)
    case longPoll(url: String)

    /// A gate's TCP port from `host:port` (as region files and route write
    /// it), TLS or not; nil when it is not `host:port`.
    public init?(tcp: String, tls: Bool) {
        let parts = tcp.split(separator: ":")
        guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]) else { return nil }
        self = tls ? .tls(host: String(parts[0]), port: port) : .tcp(host: String(parts[0]), port: port)
    }

    /// Whether a connection to it is TLS.
    public var usesTLS: Bool {
        switch self {
        case .tcp: false
        case .tls: true
        case .webSocket(let url): url.hasPrefix("wss:")
        case .longPoll(let url): url.hasPrefix("https:")
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): "tcp://\(host):\(port)"
        case .tls(let host, let port): "tls://\(host):\(port)"
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

    /// `tls` is the client's TLS, required when `address.usesTLS`.
    static func connect(to address: GateAddress, tls: ClientTLS?, logger: Logger) async throws -> FrameTransport {
        if address.usesTLS, tls == nil { preconditionFailure("a TLS address without the client's TLS") }
        switch address {
        case .tcp(let host, let port): return try await tcp(host: host, port: port, tls: nil)
        case .tls(let host, let port): return try await tcp(host: host, port: port, tls: tls)
        case .webSocket(let url): return try await webSocket(url: url, tls: address.usesTLS ? tls?.configuration : nil, logger: logger)
        case .longPoll(let url): return try LongPollTransport.open(url: url, tls: address.usesTLS ? tls : nil)
        }
    }

    private static func tcp(host: String, port: Int, tls: ClientTLS?) async throws -> FrameTransport {
        let channel = try await ClientBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(3))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.handler(host: host)) }
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
            } catch FrameError.tooLarge(let length, _) where tls == nil && length >> 16 == 0x1503 {
                // A TLS record header (alert, version 3.x) read as a frame length.
                received.finish(throwing: ClientConnectionError.closed("the gate at \(host):\(port) speaks TLS: connect with a tls:// address"))
            } catch {
                received.finish(throwing: error)
            }
        }
        return FrameTransport(inbound: inbound, outbound: outbound)
    }

    private static func webSocket(url: String, tls: TLSConfiguration?, logger: Logger) async throws -> FrameTransport {
        let (inbound, received) = AsyncThrowingStream<Parley_Frame, any Error>.makeStream()
        let (outgoing, outbound) = AsyncStream<Parley_Frame>.makeStream()
        // Yields nil once the upgrade succeeded, or why the connection failed.
        let (opened, open) = AsyncStream<(any Error)?>.makeStream()
        // The WebSocket client puts the host in SNI, which cannot carry an IP
        // address: a loopback address is dialled as `localhost` (whose name
        // the cluster's certificates carry); any other needs a host name.
        var sniHostname: String?
        if tls != nil, let host = URLComponents(string: url)?.host, ClientTLS.isAddress(host) {
            guard host == "127.0.0.1" || host == "::1" else {
                throw ClientConnectionError.closed("a wss:// URL names its gate by host name, not by address: \(url)")
            }
            sniHostname = "localhost"
        }
        Task {
            do {
                try await WebSocketClient.connect(
                    url: url,
                    configuration: .init(maxFrameSize: maxInboundFrame, sniHostname: sniHostname),
                    tlsConfiguration: tls,
                    logger: logger
                ) { messages, writer, _ in
                    open.yield(nil)
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
                open.yield(error)
                received.finish(throwing: error)
            }
            open.finish()
        }
        var iterator = opened.makeAsyncIterator()
        switch await iterator.next() {
        case .some(nil): break
        case .some(let error?): throw ClientConnectionError.closed("WebSocket to \(url): \(error)")
        case nil: throw ClientConnectionError.closed("WebSocket upgrade to \(url) failed")
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
