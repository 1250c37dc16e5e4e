import Logging
import ParleyCore
import ParleyPresence
import ParleyProto
import ParleyRPC
import ServiceLifecycle
import Tracing

/// After commit, pushes each event to every online device of its audience,
/// down the link of the gate node that presence names for the device.
///
/// Pushes are best effort: a device that misses one sees a gap in its
/// (origin, user_seq) and pulls, and one that was offline syncs on reconnect.
/// So a slow or dead gate costs only its own devices a pull, never a commit.
final class PushDispatcher: Service, Sendable {
    private let presence: Presence
    private let gates: GateLinks
    private let metrics: LogicMetrics
    private let logger: Logger
    /// Each event with when it was queued, for the push latency.
    private let queue = BatchQueue<(event: Parley_Event, queuedAt: ContinuousClock.Instant)>(maxBatch: 4096)

    init(presence: Presence, gates: GateLinks, metrics: LogicMetrics, logger: Logger) {
        self.presence = presence
        self.gates = gates
        self.metrics = metrics
        self.logger = logger
    }

    /// Called after a batch commits; never blocks the committer. Events that
    /// pile up while a dispatch runs go out together in the next one.
    func enqueue(_ events: [Parley_Event]) {
        let now = ContinuousClock.now
        for event in events { queue.push((event, now)) }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            while let queued = await queue.next() {
                await dispatch(queued.map(\.event))
                let now = ContinuousClock.now
                for entry in queued { metrics.pushLatency.recordNanoseconds((now - entry.queuedAt).nanoseconds) }
            }
        } onGracefulShutdown: {
            self.queue.close()
        }
    }

    /// Sends a typing notice to the devices of `users` connected to this
    /// region, now (not queued behind pushes); lost ones are simply lost.
    func deliver(_ notice: Parley_TypingNotice, to users: [String]) async {
        guard !users.isEmpty, let devices = try? await presence.locate(users) else { return }
        var byGate: [String: [Parley_Delivery]] = [:]
        for (user, locations) in devices {
            for device in locations {
                byGate[device.gateNode, default: []].append(.with {
                    $0.userID = user
                    $0.deviceID = device.deviceID
                    $0.typing = notice
                })
            }
        }
        for (gate, deliveries) in byGate { _ = gates.deliver(deliveries, to: gate) }
    }

    private func dispatch(_ events: [Parley_Event]) async {
        // Each traced event's pushes, in the trace of the request that made it (here or in its origin region).
        let spans = events.compactMap { TraceParent.span("logic.push", under: $0.traceParent, kind: .producer) }
        defer { for span in spans { span.end() } }
        let users = Set(events.flatMap { $0.audience.map(\.userID) })
        let devices: [String: [DeviceLocation]]
        do {
            devices = try await presence.locate(Array(users))
        } catch {
            logger.warning("presence lookup failed; devices will sync", metadata: ["error": "\(error)"])
            return
        }
        var byGate: [String: [Parley_Delivery]] = [:]
        for event in events {
            let visible = event.forDevice
            for entry in event.audience {
                for device in devices[entry.userID] ?? [] {
                    byGate[device.gateNode, default: []].append(.with {
                        $0.userID = entry.userID
                        $0.deviceID = device.deviceID
                        $0.push = .with {
                            $0.position = .with {
                                $0.origin = event.origin
                                $0.userSeq = entry.userSeq
                            }
                            $0.event = visible
                        }
                    })
                }
            }
        }
        metrics.pushes.increment(by: byGate.values.reduce(0) { $0 + $1.count })
        for (gate, deliveries) in byGate where !gates.deliver(deliveries, to: gate) {
            logger.debug("gate not linked here; its devices will sync", metadata: ["gate": "\(gate)"])
        }
    }
}
