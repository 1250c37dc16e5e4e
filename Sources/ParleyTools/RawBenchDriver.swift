import NIOCore
import NIOPosix
import ParleyCore
import ParleyProbe
import ParleyProto
import ParleyWire

/// The load generator of `parley bench` over TCP: each client is one NIO
/// channel whose handler signs in, keeps `window` sends in flight and records
/// acks and live pushes, speaking raw frames (docs/PROTOCOL.md). No SDK state
/// machine and no task per client: the generator shares the machine with the
/// region it measures, and every cycle it spends is one the region cannot.
struct RawBenchDriver {
    struct Client {
        let userID: String
        let partner: String
        let token: String
        let host: String
        let port: Int
        /// The gate's TCP port speaks TLS.
        let tls: Bool
        let sends: Bool
    }

    let clients: [Client]
    let window: Int
    /// Between two sends of one client when paced; nil: as fast as acks come back.
    let interval: Duration?
    let durability: Parley_Durability
    let recorder: Bench.Recorder
    /// For clients of TLS gates.
    let tls: ClientTLS?

    /// Connects and signs in every client; they start sending on `start`.
    func connect() async throws -> [any Channel] {
        try await withThrowingTaskGroup(of: (Int, any Channel).self) { group in
            // At most 64 handshakes at once: a sign-in storm is another benchmark.
            var next = 0
            var channels: [(Int, any Channel)] = []
            func add(_ index: Int) {
                let client = clients[index]
                group.addTask { (index, try await self.connect(client)) }
            }
            while next < min(64, clients.count) { add(next); next += 1 }
            while let connected = try await group.next() {
                channels.append(connected)
                if next < clients.count { add(next); next += 1 }
            }
            return channels.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    private func connect(_ client: Client) async throws -> any Channel {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let signedIn = eventLoop.makePromise(of: Void.self)
        let (window, interval, durability, recorder) = (self.window, self.interval, self.durability, self.recorder)
        let tls = client.tls ? self.tls : nil
        let channel = try await ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.handler(host: client.host)) }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: 16 << 20)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    try channel.pipeline.syncOperations.addHandler(RawBenchClient(
                        client: client, window: window, interval: interval, durability: durability, recorder: recorder,
                        signedIn: signedIn
                    ))
                }
            }
            .connect(host: client.host, port: client.port).get()
        do {
            try await signedIn.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return channel
    }

    /// Every client starts sending (each on its own event loop).
    static func start(_ channels: [any Channel]) {
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(RawBenchClient.Start()) }
    }

    static func stop(_ channels: [any Channel]) async {
        for channel in channels { try? await channel.close() }
    }
}

/// One benchmark client, run entirely on its channel's event loop.
private final class RawBenchClient: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Start {}

    private let client: RawBenchDriver.Client
    private let window: Int
    private let interval: Duration?
    private let durability: Parley_Durability
    private let recorder: Bench.Recorder
    private var context: ChannelHandlerContext?
    private var nextRequestID: UInt64 = 1
    /// Sends awaiting their ack: request id → when it was written (monotonic µs).
    private var inFlight: [UInt64: UInt64] = [:]
    private var nextPacedSend: NIODeadline = .now()
    private var heartbeat: RepeatedTask?
    private let signedIn: EventLoopPromise<Void>
    private var signInAnswered = false

    init(
        client: RawBenchDriver.Client, window: Int, interval: Duration?, durability: Parley_Durability, recorder: Bench.Recorder,
        signedIn: EventLoopPromise<Void>
    ) {
        self.client = client
        self.window = window
        self.interval = interval
        self.durability = durability
        self.recorder = recorder
        self.signedIn = signedIn
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        write(.with {
            $0.requestID = takeRequestID()
            $0.auth = .with {
                $0.token = client.token
                $0.deviceID = "bench"
            }
        })
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeat?.cancel()
        answerSignIn(.failure(ChannelError.ioOnClosedChannel))
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is Start, client.sends else { return context.fireUserInboundEventTriggered(event) }
        if let interval {
            // Paced senders start spread over one interval, not all at once.
            nextPacedSend = .now() + .nanoseconds(Int64(Double(interval.nanoseconds) * Double.random(in: 0..<1)))
        }
        for _ in 0..<window { sendNext() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let frame = try? Parley_Frame.decode(unwrapInboundIn(data)) else { return recorder.failed() }
        switch frame.body {
        case .authOk(let ok):
            let every = TimeAmount.milliseconds(Int64(max(1_000, ok.heartbeatIntervalMs)))
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            heartbeat = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
                bound.value.write(.with { $0.heartbeat = .init() })
            }
            answerSignIn(.success(()))
        case .sendAck:
            acked(frame.requestID, failed: false)
        case .error(let error):
            if inFlight[frame.requestID] != nil {
                acked(frame.requestID, failed: true)
            } else {
                answerSignIn(.failure(BenchError.refused("\(error.code): \(error.message)")))
                recorder.failed()
            }
        case .push(let push):
            delivered(push.event)
        default:
            break
        }
    }

    private func acked(_ requestID: UInt64, failed: Bool) {
        guard let sent = inFlight.removeValue(forKey: requestID) else { return }
        if failed {
            recorder.failed()
        } else {
            recorder.acked(latency: Bench.monotonicMicros() - sent)
        }
        guard let interval, let context else { return sendNext() }
        nextPacedSend = nextPacedSend + .nanoseconds(Int64(interval.nanoseconds))
        if nextPacedSend <= .now() { return sendNext() }
        context.eventLoop.assumeIsolated().scheduleTask(deadline: nextPacedSend) { self.sendNext() }
    }

    private func delivered(_ event: Parley_Event) {
        guard case .messagePosted(let posted) = event.kind, posted.sender == client.partner else { return }
        recorder.delivered(posted, hlc: event.hlc)
    }

    private func sendNext() {
        guard !recorder.stopped.load(ordering: .relaxed) else { return }
        let requestID = takeRequestID()
        let sent = Bench.monotonicMicros()
        inFlight[requestID] = sent
        write(.with {
            $0.requestID = requestID
            $0.send = .with {
                $0.clientMsgID = "\(client.userID).\(requestID)"
                $0.toUser = client.partner
                $0.body = "t=\(sent)"
                $0.durability = durability
            }
        })
    }

    private func answerSignIn(_ result: Result<Void, any Error>) {
        guard !signInAnswered else { return }
        signInAnswered = true
        signedIn.completeWith(result)
    }

    private func takeRequestID() -> UInt64 {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    private func write(_ frame: Parley_Frame) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(frame.encoded(allocator: context.channel.allocator)), promise: nil)
    }
}

enum BenchError: Error, CustomStringConvertible {
    case refused(String)

    var description: String {
        switch self {
        case .refused(let reason): "the gate refused a bench client: \(reason)"
        }
    }
}

