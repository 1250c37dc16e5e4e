import GRPCCore
import Logging
import ParleyPresence
import ParleyProto
import ParleyRPC
import ServiceLifecycle

/// After commit, pushes each event to every online device of its audience,
/// through the gate node that presence names for the device.
///
/// Pushes are best effort: a device that misses one sees a gap in its
/// (origin, user_seq) and pulls, and one that was offline syncs on reconnect.
/// So a slow or dead gate costs only its own devices a pull, never a commit.
final class PushDispatcher: Service, Sendable {
    private let presence: Presence
    private let gates: RPCClientPool
    private let logger: Logger
    private let queue = BatchQueue<Parley_Event>(maxBatch: 4096)

    init(presence: Presence, gates: RPCClientPool, logger: Logger) {
        self.presence = presence
        self.gates = gates
        self.logger = logger
    }

    /// Called after a batch commits; never blocks the committer. Events that
    /// pile up while a dispatch runs go out together in the next one.
    func enqueue(_ events: [Parley_Event]) {
        for event in events { queue.push(event) }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            while let events = await queue.next() { await dispatch(events) }
        } onGracefulShutdown: {
            self.queue.close()
        }
    }

    private func dispatch(_ events: [Parley_Event]) async {
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
        await withTaskGroup(of: Void.self) { group in
            for (gate, deliveries) in byGate {
                group.addTask { await self.deliver(deliveries, to: gate) }
            }
        }
    }

    private func deliver(_ deliveries: [Parley_Delivery], to gate: String) async {
        do {
            let client = Parley_Gate.Client(wrapping: try gates.client(for: gate))
            _ = try await client.deliver(.with { $0.deliveries = deliveries }, options: .failFast(timeout: .seconds(2)))
        } catch {
            logger.debug("push to gate failed", metadata: ["gate": "\(gate)", "error": "\(error)"])
        }
    }
}
