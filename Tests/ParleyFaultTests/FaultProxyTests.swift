import NIOCore
import NIOPosix
import ParleyFault
import Synchronization
import Testing

/// The fault proxy in front of a real TCP echo server.
@Suite(.timeLimit(.minutes(1))) struct FaultProxyTests {
    @Test func bytesCrossInOrderAfterTheAddedDelayEachWay() async throws {
        try await withEchoProxy(LinkFaults(delayMs: 40, lossRate: 0.3, retransmitMs: 30)) { proxy in
            let connection = try await EchoConnection(port: proxy.port)
            let start = ContinuousClock.now
            let sent = (0..<200).map { "line \($0)\n" }.joined()
            for line in sent.split(separator: "\n") { try await connection.write(line + "\n") }
            let echoed = try await connection.read(count: sent.utf8.count)
            #expect(echoed == sent, "every byte back, in order, despite delays and lost segments")
            #expect(ContinuousClock.now - start >= .milliseconds(80), "40 ms there and 40 ms back")
            await connection.close()
        }
    }

    @Test func cuttingResetsOpenConnectionsAndRefusesNewOnesUntilHealed() async throws {
        try await withEchoProxy(.healthy) { proxy in
            let connection = try await EchoConnection(port: proxy.port)
            try await connection.write("before\n")
            #expect(try await connection.read(count: 7) == "before\n")

            proxy.set(LinkFaults(state: .cut))
            #expect(try await connection.readsEnd(), "the open connection is reset")
            #expect(try await isRefused(port: proxy.port), "a new one is reset at once")
            #expect(proxy.counts.dropped == 1)

            proxy.set(.healthy)
            let healed = try await EchoConnection(port: proxy.port)
            try await healed.write("after\n")
            #expect(try await healed.read(count: 6) == "after\n")
            await healed.close()
        }
    }

    @Test func aBlackholeHoldsEverythingUntilTheLinkOpens() async throws {
        try await withEchoProxy(.healthy) { proxy in
            let connection = try await EchoConnection(port: proxy.port)
            proxy.set(LinkFaults(state: .blackhole))
            try await connection.write("held\n")
            let dialledDuring = try await EchoConnection(port: proxy.port)
            try await dialledDuring.write("late\n")
            #expect(try await connection.read(count: 1, within: .milliseconds(300)) == nil, "nothing comes back")
            #expect(try await dialledDuring.read(count: 1, within: .milliseconds(50)) == nil)
            proxy.set(.healthy)
            #expect(try await connection.read(count: 5) == "held\n", "the connection survived and what was held arrives")
            #expect(try await dialledDuring.read(count: 5) == "late\n")
            await connection.close()
            await dialledDuring.close()
        }
    }

    @Test func theDropRateIsTheFractionOfNewConnectionsReset() async throws {
        try await withEchoProxy(LinkFaults(dropRate: 1)) { proxy in
            for _ in 0..<5 { #expect(try await isRefused(port: proxy.port)) }
            #expect(proxy.counts.dropped == 5)
            proxy.set(LinkFaults(dropRate: 0))
            for _ in 0..<5 {
                let connection = try await EchoConnection(port: proxy.port)
                try await connection.write("x")
                #expect(try await connection.read(count: 1) == "x")
                await connection.close()
            }
            #expect(proxy.counts == (accepted: 10, dropped: 5))
        }
    }

    /// An HTTP/2 server speaks first (its SETTINGS frame) the moment it
    /// accepts: the proxy must forward bytes the upstream sends before the
    /// client has said anything. It once dropped them when they arrived
    /// before its relay was in place, and gRPC through it failed with
    /// `ReceivedBadSettings` on a loaded machine.
    @Test func whatTheUpstreamSendsFirstOnAcceptReachesTheClient() async throws {
        try await withEchoProxy(.healthy, greeting: "hello\n") { proxy in
            for attempt in 0..<100 {
                let connection = try await EchoConnection(port: proxy.port)
                #expect(try await connection.read(count: 6, within: .seconds(5)) == "hello\n", "connection \(attempt)")
                await connection.close()
            }
        }
    }
}

/// True when a new connection is reset before anything is sent: the reset
/// may come while connecting (the connect fails) or just after (reads end).
private func isRefused(port: Int) async throws -> Bool {
    let connection: EchoConnection
    do { connection = try await EchoConnection(port: port) } catch { return true }
    return try await connection.readsEnd()
}

/// Runs `body` with a proxy in front of a fresh echo server, both stopped after.
/// A `greeting` is written by the server to every connection it accepts.
private func withEchoProxy(_ faults: LinkFaults, greeting: String? = nil, _ body: (FaultProxy) async throws -> Void) async throws {
    let echo = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { $0.pipeline.addHandler(Echo(greeting: greeting)) }
        .bind(host: "127.0.0.1", port: 0).get()
    let proxy = try await FaultProxy.start(upstreamHost: "127.0.0.1", upstreamPort: echo.localAddress!.port!, faults: faults)
    do {
        try await body(proxy)
    } catch {
        await proxy.stop()
        try? await echo.close()
        throw error
    }
    await proxy.stop()
    try await echo.close()
}

private final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let greeting: String?
    init(greeting: String?) { self.greeting = greeting }
    func channelActive(context: ChannelHandlerContext) {
        if let greeting { context.writeAndFlush(NIOAny(ByteBuffer(string: greeting)), promise: nil) }
        context.fireChannelActive()
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// One client connection through the proxy, read as text.
private struct EchoConnection {
    let channel: any Channel
    private let buffer = TextBuffer()

    init(port: Int) async throws {
        let buffer = self.buffer
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { $0.pipeline.addHandler(Collector(buffer: buffer)) }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func write(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// The next `count` bytes as text, or nil if they do not all arrive `within`.
    func read(count: Int, within timeout: Duration = .seconds(10)) async throws -> String? {
        try await poll(timeout) { buffer.count >= count } ? buffer.take(count) : nil
    }

    /// True once the connection ends (closed or reset) having sent nothing more.
    func readsEnd(within timeout: Duration = .seconds(10)) async throws -> Bool {
        try await poll(timeout) { buffer.ended } && buffer.count == 0
    }

    private func poll(_ timeout: Duration, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    func close() async {
        try? await channel.close()
    }
}

private final class Collector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let buffer: TextBuffer
    init(buffer: TextBuffer) { self.buffer = buffer }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        buffer.append(String(buffer: unwrapInboundIn(data)))
    }
    func channelInactive(context: ChannelHandlerContext) { buffer.end() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// What a connection received, filled on its event loop and read by the test.
private final class TextBuffer: Sendable {
    private let state = Mutex((text: "", ended: false))
    var count: Int { state.withLock { $0.text.utf8.count } }
    var ended: Bool { state.withLock { $0.ended } }
    func append(_ more: String) { state.withLock { $0.text += more } }
    func end() { state.withLock { $0.ended = true } }
    func take(_ count: Int) -> String {
        state.withLock { state in
            let bytes = Array(state.text.utf8)
            state.text = String(decoding: bytes[count...], as: UTF8.self)
            return String(decoding: bytes[..<count], as: UTF8.self)
        }
    }
}
