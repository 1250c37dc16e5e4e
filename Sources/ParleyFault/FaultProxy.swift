#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization

/// What a link does to the bytes and connections that cross it.
///
/// This kernel has no netem, so tests, benchmarks and drills put a
/// `FaultProxy` on the links they want to hurt instead.
public struct LinkFaults: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Bytes flow (after `delayMs`).
        case open
        /// Every connection is reset and new ones are refused: the peer sees
        /// the failure at once ("connection refused").
        case cut
        /// Connections are accepted and kept, but nothing crosses in either
        /// direction until the link opens again; then what was held arrives,
        /// as TCP's retransmissions deliver it after a partition heals. Peers
        /// notice only by timing out.
        case blackhole
    }

    public var state: State
    /// Added one-way delay: each chunk reaches the other side this much later.
    public var delayMs: Int
    /// Fraction of new connections reset at once (0...1): flaky probes, refused dials.
    public var dropRate: Double
    /// Fraction of chunks that arrive `retransmitMs` late (0...1), as a lost TCP
    /// segment does after its retransmission; later chunks wait behind it.
    public var lossRate: Double
    public var retransmitMs: Int

    public init(state: State = .open, delayMs: Int = 0, dropRate: Double = 0, lossRate: Double = 0, retransmitMs: Int = 200) {
        self.state = state
        self.delayMs = delayMs
        self.dropRate = dropRate
        self.lossRate = lossRate
        self.retransmitMs = retransmitMs
    }

    public static let healthy = LinkFaults()

    /// Absent fields take their healthy value: `{"delayMs": 50}` is a delay alone.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            state: try container.decodeIfPresent(State.self, forKey: .state) ?? .open,
            delayMs: try container.decodeIfPresent(Int.self, forKey: .delayMs) ?? 0,
            dropRate: try container.decodeIfPresent(Double.self, forKey: .dropRate) ?? 0,
            lossRate: try container.decodeIfPresent(Double.self, forKey: .lossRate) ?? 0,
            retransmitMs: try container.decodeIfPresent(Int.self, forKey: .retransmitMs) ?? 200
        )
    }
}

/// A TCP proxy in front of one upstream address that delays, loses, drops,
/// blackholes or cuts what crosses it, changeable while it runs.
///
/// ```swift
/// let proxy = try await FaultProxy.start(upstreamHost: "127.0.0.1", upstreamPort: 7130)
/// proxy.set(LinkFaults(delayMs: 50))   // 50 ms one way
/// proxy.set(LinkFaults(state: .cut))   // connections reset, new ones refused
/// ```
public final class FaultProxy: Sendable {
    public let name: String
    public let upstreamHost: String
    public let upstreamPort: Int
    /// The port clients connect to instead of the upstream's.
    public let port: Int

    private struct State {
        var faults = LinkFaults.healthy
        var nextConnection = 0
        /// Open connections, closed at once when the link is cut.
        var connections: [Int: any Channel] = [:]
        var accepted = 0
        var dropped = 0
    }

    private let state = Mutex(State())
    private let server: any Channel

    /// Listens on `listenHost:listenPort` (0: any free port) and forwards to the upstream.
    public static func start(
        name: String = "link", listenHost: String = "127.0.0.1", listenPort: Int = 0,
        upstreamHost: String, upstreamPort: Int, faults: LinkFaults = .healthy
    ) async throws -> FaultProxy {
        let accepted = AsyncStream<any Channel>.makeStream()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                accepted.continuation.yield(channel)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: listenHost, port: listenPort).get()
        let proxy = FaultProxy(
            name: name, server: server, port: server.localAddress?.port ?? listenPort,
            upstreamHost: upstreamHost, upstreamPort: upstreamPort
        )
        proxy.set(faults)
        server.closeFuture.whenComplete { _ in accepted.continuation.finish() }
        Task {
            await withDiscardingTaskGroup { group in
                for await channel in accepted.stream {
                    group.addTask { await proxy.serve(channel) }
                }
            }
        }
        return proxy
    }

    private init(name: String, server: any Channel, port: Int, upstreamHost: String, upstreamPort: Int) {
        self.name = name
        self.server = server
        self.port = port
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
    }

    public var faults: LinkFaults { state.withLock { $0.faults } }

    /// Connections accepted and connections dropped (reset at once) so far.
    public var counts: (accepted: Int, dropped: Int) { state.withLock { ($0.accepted, $0.dropped) } }

    /// Changes what the link does; cutting it resets every open connection.
    public func set(_ faults: LinkFaults) {
        let victims = state.withLock { state -> [any Channel] in
            state.faults = faults
            return faults.state == .cut ? Array(state.connections.values) : []
        }
        for channel in victims { Self.reset(channel) }
    }

    /// Stops listening and closes every connection.
    public func stop() async {
        try? await server.close()
        let open = state.withLock { state in
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for channel in open { Self.reset(channel) }
    }

    private func serve(_ client: any Channel) async {
        let admitted = state.withLock { state -> Bool in
            state.accepted += 1
            let drop = state.faults.state == .cut || (state.faults.dropRate > 0 && Double.random(in: 0..<1) < state.faults.dropRate)
            if drop { state.dropped += 1 }
            return !drop
        }
        guard admitted else {
            Self.reset(client)
            return
        }
        let upstreamChannel: any Channel
        let inbound: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let outbound: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            // The upstream is wrapped in its channel initializer, before its
            // first read: an HTTP/2 server sends its SETTINGS the moment it
            // accepts, and bytes read before the wrapper exists are dropped
            // (gRPC then fails with ReceivedBadSettings).
            outbound = try await ClientBootstrap(group: client.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(2))
                .connect(host: upstreamHost, port: upstreamPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            upstreamChannel = outbound.channel
            // The client's channel does not read until autoRead is switched on below.
            inbound = try await client.eventLoop.submit {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: client)
            }.get()
        } catch {
            // The upstream is down: the client sees what it would see without the proxy.
            Self.reset(client)
            return
        }
        let id = state.withLock { state -> Int? in
            // Cut while connecting: this connection must not survive the cut.
            guard state.faults.state != .cut else { return nil }
            state.nextConnection += 1
            state.connections[state.nextConnection] = client
            return state.nextConnection
        }
        guard let id else {
            Self.reset(client)
            upstreamChannel.close(promise: nil)
            return
        }
        defer { _ = state.withLock { $0.connections.removeValue(forKey: id) } }
        try? await inbound.executeThenClose { clientIn, clientOut in
            try await outbound.executeThenClose { upstreamIn, upstreamOut in
                try await client.setOption(.autoRead, value: true).get()
                // Either direction ending (or the link being cut) ends the connection.
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await self.pump(clientIn, to: upstreamOut) }
                    group.addTask { try? await self.pump(upstreamIn, to: clientOut) }
                    await group.next()
                    group.cancelAll()
                }
            }
        }
        Self.reset(client)
        upstreamChannel.close(promise: nil)
    }

    /// Forwards one direction: reading never waits on the delay, so a delayed
    /// link keeps its throughput; a FIFO keeps the byte order.
    private func pump(_ source: NIOAsyncChannelInboundStream<ByteBuffer>, to sink: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        let (due, queue) = AsyncStream<(ContinuousClock.Instant, ByteBuffer)>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { queue.finish() }
                for try await chunk in source {
                    let faults = self.faults
                    var delay = faults.delayMs
                    if faults.lossRate > 0, Double.random(in: 0..<1) < faults.lossRate { delay += faults.retransmitMs }
                    queue.yield((.now + .milliseconds(delay), chunk))
                }
            }
            group.addTask {
                for await (deadline, chunk) in due {
                    if deadline > .now { try await Task.sleep(until: deadline, tolerance: .microseconds(100)) }
                    // Blackholed: held. A fault injector may poll; nothing here is on a hot path.
                    while self.faults.state == .blackhole { try await Task.sleep(for: .milliseconds(5)) }
                    try await sink.write(chunk)
                }
            }
            try await group.waitForAll()
        }
    }

    /// Closes with a TCP reset, as a refused or broken connection looks to its peer.
    private static func reset(_ channel: any Channel) {
        guard let socket = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }
}
