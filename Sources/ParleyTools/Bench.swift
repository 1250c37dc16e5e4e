import Histogram
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProbe
import ParleyProto
import ParleyWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `parley bench`: drives pairs of clients over loopback, each sending to its
/// partner as fast as acks come back, and measures accepted messages/s and
/// send→deliver latency with HDR histograms.
public struct Bench: Sendable {
    public struct Options: Sendable {
        public var gates: [GateAddress]
        /// The authority TLS gates' certificates chain to (nil: the system's).
        public var certificateAuthority: String?
        public var tokenSecret: String
        public var clients: Int
        public var seconds: Int
        public var warmupSeconds: Int
        /// Sends in flight per client (1: wait for each ack).
        public var window: Int
        /// When set, each pair's receiver connects here (another region) and
        /// only senders send: deliveries then measure cross-region visibility.
        public var receiverGates: [GateAddress]?
        /// Total sends per second across senders (paced); nil: as fast as acks come back.
        public var rate: Int?
        public var durability: Parley_Durability = .default

        public init(gates: [GateAddress], tokenSecret: String, clients: Int, seconds: Int, warmupSeconds: Int, window: Int) {
            self.gates = gates
            self.tokenSecret = tokenSecret
            self.clients = clients
            self.seconds = seconds
            self.warmupSeconds = warmupSeconds
            self.window = window
        }
    }

    public struct Report: Sendable, CustomStringConvertible {
        public var clients: Int
        public var seconds: Double
        public var acked: UInt64
        public var delivered: UInt64
        public var errors: UInt64
        public var ackMicros: (p50: UInt64, p99: UInt64, p999: UInt64)
        public var deliverMicros: (p50: UInt64, p99: UInt64, p999: UInt64)
        /// Commit (the event's hlc, wall-clock milliseconds) to delivery, in ms.
        public var visibleMillis: (p50: UInt64, p99: UInt64, p999: UInt64)

        public var description: String {
            """
            clients \(clients), measured \(String(format2: seconds)) s
            accepted   \(String(format2: Double(acked) / seconds)) msgs/s (\(acked) acked, \(errors) errors)
            delivered  \(String(format2: Double(delivered) / seconds)) msgs/s
            send→ack      p50 \(ms(ackMicros.p50)) ms  p99 \(ms(ackMicros.p99)) ms  p999 \(ms(ackMicros.p999)) ms
            send→deliver  p50 \(ms(deliverMicros.p50)) ms  p99 \(ms(deliverMicros.p99)) ms  p999 \(ms(deliverMicros.p999)) ms
            commit→deliver (hlc, 1 ms resolution)  p50 \(visibleMillis.p50) ms  p99 \(visibleMillis.p99) ms  p999 \(visibleMillis.p999) ms
            """
        }

        private func ms(_ micros: UInt64) -> String { String(format2: Double(micros) / 1000) }
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    final class Recorder: Sendable {
        struct State {
            var ack = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var deliver = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var visible = Histogram<UInt64>(highestTrackableValue: 60_000, numberOfSignificantValueDigits: .three)
            var acked: UInt64 = 0
            var delivered: UInt64 = 0
            var errors: UInt64 = 0
        }
        let state = Mutex(State())
        let measuring = Atomic<Bool>(false)
        /// Set at the deadline: no more sends.
        let stopped = Atomic<Bool>(false)

        /// A send acked `latency` µs after it was written (counted while measuring).
        func acked(latency: UInt64) {
            guard measuring.load(ordering: .relaxed) else { return }
            state.withLock { state in
                state.acked += 1
                _ = state.ack.record(latency)
            }
        }

        /// A send refused or lost (counted while measuring).
        func failed() {
            guard measuring.load(ordering: .relaxed) else { return }
            state.withLock { $0.errors += 1 }
        }

        /// A partner's message pushed live: its body carries when it was sent ("t=<µs>").
        func delivered(_ posted: Parley_MessagePosted, hlc: UInt64) {
            guard let sent = UInt64(posted.body.dropFirst(2)) else { return }
            let latency = Bench.monotonicMicros() &- sent
            let visible = WallClock.milliseconds() &- HLC(rawValue: hlc).milliseconds
            guard measuring.load(ordering: .relaxed), latency < 60_000_000 else { return }
            state.withLock { state in
                state.delivered += 1
                _ = state.deliver.record(latency)
                if visible < 60_000 { _ = state.visible.record(visible) }
            }
        }

        func report(clients: Int, seconds: Double) -> Report {
            state.withLock { state in
                Report(
                    clients: clients, seconds: seconds, acked: state.acked, delivered: state.delivered, errors: state.errors,
                    ackMicros: (state.ack.valueAtPercentile(50), state.ack.valueAtPercentile(99), state.ack.valueAtPercentile(99.9)),
                    deliverMicros: (
                        state.deliver.valueAtPercentile(50), state.deliver.valueAtPercentile(99), state.deliver.valueAtPercentile(99.9)
                    ),
                    visibleMillis: (state.visible.valueAtPercentile(50), state.visible.valueAtPercentile(99), state.visible.valueAtPercentile(99.9))
                )
            }
        }
    }

    /// Over TCP the lean raw-frame driver (`RawBenchDriver`); over WebSocket the SDK.
    public func run() async throws -> Report {
        let endpoints = options.gates.compactMap(Self.tcpEndpoint)
        let receiverEndpoints = options.receiverGates?.compactMap(Self.tcpEndpoint)
        guard endpoints.count == options.gates.count, receiverEndpoints?.count == options.receiverGates?.count else {
            return try await runWithSDK()
        }
        let authority = try await TokenAuthority(secret: options.tokenSecret)
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let count = options.clients + options.clients % 2
        let oneWay = options.receiverGates != nil
        var clients: [RawBenchDriver.Client] = []
        for index in 0..<count {
            let isReceiver = index % 2 == 1
            let gates = isReceiver ? (receiverEndpoints ?? endpoints) : endpoints
            let gate = gates[index % gates.count]
            clients.append(.init(
                userID: "bench\(run)_\(index)", partner: "bench\(run)_\(index ^ 1)",
                token: try await authority.issue(userID: "bench\(run)_\(index)", lifetime: 3600),
                host: gate.host, port: gate.port, tls: gate.tls, sends: !(oneWay && isReceiver)
            ))
        }
        let usesTLS = (endpoints + (receiverEndpoints ?? [])).contains(where: \.tls)
        let senders = oneWay ? count / 2 : count
        let recorder = Recorder()
        let driver = RawBenchDriver(
            clients: clients, window: options.window,
            interval: options.rate.map { Duration.seconds(Double(senders) / Double(max(1, $0))) },
            durability: options.durability, recorder: recorder,
            tls: usesTLS ? try ClientTLS(trusting: options.certificateAuthority) : nil
        )
        let channels = try await driver.connect()
        RawBenchDriver.start(channels)
        try await Task.sleep(for: .seconds(options.warmupSeconds))
        recorder.measuring.store(true, ordering: .relaxed)
        let started = ContinuousClock.now
        try await Task.sleep(for: .seconds(options.seconds))
        recorder.measuring.store(false, ordering: .relaxed)
        let elapsed = started.duration(to: ContinuousClock.now)
        recorder.stopped.store(true, ordering: .relaxed)
        await RawBenchDriver.stop(channels)
        return recorder.report(clients: count, seconds: Self.seconds(elapsed))
    }

    private static func tcpEndpoint(_ gate: GateAddress) -> (host: String, port: Int, tls: Bool)? {
        switch gate {
        case .tcp(let host, let port): (host, port, false)
        case .tls(let host, let port): (host, port, true)
        case .webSocket, .longPoll: nil
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func runWithSDK() async throws -> Report {
        let authority = try await TokenAuthority(secret: options.tokenSecret)
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let count = options.clients + options.clients % 2
        var clients: [ParleyClient] = []
        for index in 0..<count {
            let token = try await authority.issue(userID: "bench\(run)_\(index)", lifetime: 3600)
            let isReceiver = index % 2 == 1
            let gates = isReceiver ? (options.receiverGates ?? options.gates) : options.gates
            let gate = gates[index % gates.count]
            var configuration = ParleyClient.Configuration(gates: [gate], token: token, deviceID: "bench")
            configuration.reconnects = false
            configuration.certificateAuthority = options.certificateAuthority
            let client = ParleyClient(configuration: configuration)
            try await client.connect()
            clients.append(client)
        }
        let recorder = Recorder()
        let deadline = ContinuousClock.now + .seconds(options.warmupSeconds + options.seconds)
        let window = options.window
        let warmup = options.warmupSeconds
        let oneWay = options.receiverGates != nil
        let senders = oneWay ? count / 2 : count
        // Each sender paces itself so that all of them together send `rate` per second.
        let interval = options.rate.map { Duration.seconds(Double(senders) / Double(max(1, $0))) }
        let durability = options.durability
        var started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask { await Self.receive(client, recorder) }
                let partner = "bench\(run)_\(index ^ 1)"
                if oneWay && index % 2 == 1 { continue }
                for _ in 0..<window {
                    group.addTask {
                        await Self.send(from: client, to: partner, every: interval, durability: durability, until: deadline, recorder)
                    }
                }
            }
            try await Task.sleep(for: .seconds(warmup))
            recorder.measuring.store(true, ordering: .relaxed)
            started = ContinuousClock.now
            try await Task.sleep(until: deadline)
            recorder.measuring.store(false, ordering: .relaxed)
            for client in clients { await client.disconnect() }
            group.cancelAll()
        }
        return recorder.report(clients: count, seconds: Self.seconds(started.duration(to: ContinuousClock.now)))
    }

    private static func send(
        from client: ParleyClient, to partner: String, every interval: Duration?, durability: Parley_Durability,
        until deadline: ContinuousClock.Instant, _ recorder: Recorder
    ) async {
        // Paced senders start spread over one interval, not all at once.
        var next = ContinuousClock.now + (interval.map { $0 * Double.random(in: 0..<1) } ?? .zero)
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if let interval {
                try? await Task.sleep(until: next)
                next += interval
            }
            let sent = monotonicMicros()
            do {
                _ = try await client.send(to: .user(partner), body: "t=\(sent)", durability: durability)
                recorder.acked(latency: monotonicMicros() - sent)
            } catch {
                if !Task.isCancelled { recorder.failed() }
            }
        }
    }

    private static func receive(_ client: ParleyClient, _ recorder: Recorder) async {
        let me = await client.userID
        for await received in client.events {
            guard case .messagePosted(let posted) = received.event.kind, posted.sender != me, received.live else { continue }
            recorder.delivered(posted, hlc: received.event.hlc)
        }
    }

    /// Microseconds on the monotonic clock: senders and receivers share this process.
    static func monotonicMicros() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }
}

extension String {
    init(format2 value: Double) {
        let scaled = (value * 100).rounded() / 100
        self = "\(scaled)"
    }
}
