import Foundation
import ParleyClient
import ParleyCore
import ParleyDeployment
import ParleyProto
import Synchronization

/// The cluster as its files describe it.
struct Topology {
    let regions: [RegionFile]
    let tokenSecret: String
    let adminToken: String
    /// Whether gates speak TLS, and the authority their certificates chain to.
    let security: LinkSecurity

    init(directory: String) throws {
        let cluster = try ClusterFile.decode(Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/cluster.json"))))
        regions = try cluster.regions.map { name in
            try JSONDecoder().decode(RegionFile.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name).json")))
        }
        tokenSecret = cluster.resolvedTokenSecret()
        adminToken = try cluster.resolvedAdminToken()
        security = try cluster.resolvedSecurity(relativeTo: directory)
    }

    /// Every region's TCP gates, `home`'s first: what a client uses when no route answers.
    func gates(homeFirst home: String) -> [GateAddress] {
        let ordered = regions.filter { $0.name == home } + regions.filter { $0.name != home }
        return ordered.flatMap(\.gates).compactMap { GateAddress(tcp: $0.tcp, tls: security.isTLS) }
    }
}

/// One simulated device: writes to `partner`, records what it receives.
final class SimulatedUser: Sendable {
    let name: String
    let partner: String
    /// The region route prefers for this user (its hint).
    let home: String
    let client: ParleyClient

    init(name: String, partner: String, home: String, client: ParleyClient) {
        self.name = name
        self.partner = partner
        self.home = home
        self.client = client
    }

    func receive(_ recorder: DrillRecorder) async {
        for await received in client.events {
            guard case .messagePosted(let posted) = received.event.kind, posted.sender != name else { continue }
            recorder.received(.init(sender: posted.sender, clientMsgID: posted.clientMsgID), posted)
        }
    }
}

/// Every send acknowledged to a simulated client and every message they received.
final class DrillRecorder: Sendable {
    struct Key: Hashable {
        let sender: String
        let clientMsgID: String
    }

    private struct Acked {
        let origin: String
        let seq: UInt64
        /// Acknowledged before the fault's heal began.
        let inFault: Bool
    }

    private struct State {
        var acked: [Key: Acked] = [:]
        var errors = 0
        var faultWindowOpen = true
        /// The message ids the device shows for each send, by the rule of
        /// docs/PROTOCOL.md ("Messages accepted twice"): a hidden copy is not
        /// shown, a shown one removes the copies it replaces.
        var shown: [Key: Set<String>] = [:]
        /// Every message id received for each send: more than one when two regions accepted it.
        var copies: [Key: Set<String>] = [:]
    }

    private let state = Mutex(State())

    func acked(_ user: SimulatedUser, _ clientMsgID: String, _ ack: Parley_SendAck) {
        state.withLock {
            $0.acked[Key(sender: user.name, clientMsgID: clientMsgID)] = Acked(
                origin: ack.event.origin, seq: ack.event.seq, inFault: $0.faultWindowOpen
            )
        }
    }

    /// The heal begins: later acknowledgements were not given during the fault.
    func closeFaultWindow() { state.withLock { $0.faultWindowOpen = false } }

    func failed() { state.withLock { $0.errors += 1 } }

    func received(_ key: Key, _ posted: Parley_MessagePosted) {
        state.withLock { state in
            state.copies[key, default: []].insert(posted.messageID)
            guard !posted.hidden else { return }
            state.shown[key, default: []].subtract(posted.replaces)
            state.shown[key, default: []].insert(posted.messageID)
        }
    }

    /// Acknowledged messages their recipient has not received.
    func missing() -> [Key] {
        state.withLock { state in state.acked.keys.filter { state.shown[$0, default: []].isEmpty } }
    }

    struct Tally {
        var acked: Int
        var errors: Int
        var lost: Int
        var atRisk: Int
        var atRiskReappeared: Int
        var duplicatesShown: Int
        var storedTwice: Int
    }

    /// `heldElsewhere`: the highest event of the killed region any other region held while it was down.
    func tally(killedRegion: String, heldElsewhere: UInt64) -> Tally {
        state.withLock { state in
            let atRisk = state.acked.filter { $0.value.inFault && $0.value.origin == killedRegion && $0.value.seq > heldElsewhere }
            return Tally(
                acked: state.acked.count, errors: state.errors,
                lost: state.acked.keys.filter { state.shown[$0, default: []].isEmpty }.count,
                atRisk: atRisk.count, atRiskReappeared: atRisk.keys.filter { !state.shown[$0, default: []].isEmpty }.count,
                duplicatesShown: state.shown.values.reduce(0) { $0 + max(0, $1.count - 1) },
                storedTwice: state.copies.values.filter { $0.count > 1 }.count
            )
        }
    }
}

/// Every user sends to its partner at a steady pace until stopped; a send
/// that fails over is retried by the SDK with the same client_msg_id.
final class DrillLoad: Sendable {
    let users: [SimulatedUser]
    let recorder: DrillRecorder
    let interval: Duration
    let durability: Parley_Durability
    private let running = Atomic<Bool>(true)

    init(users: [SimulatedUser], recorder: DrillRecorder, interval: Duration, durability: Parley_Durability) {
        self.users = users
        self.recorder = recorder
        self.interval = interval
        self.durability = durability
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            for user in users { group.addTask { await self.send(from: user) } }
        }
    }

    func stop() { running.store(false, ordering: .relaxed) }

    private func send(from user: SimulatedUser) async {
        var next = ContinuousClock.now + interval * Double.random(in: 0..<1)
        while running.load(ordering: .relaxed) {
            try? await Task.sleep(until: next)
            next += interval
            let id = ParleyClient.newClientMsgID()
            do {
                let ack = try await user.client.send(to: .user(user.partner), body: "drill", clientMsgID: id, durability: durability)
                recorder.acked(user, id, ack)
            } catch {
                recorder.failed()
            }
        }
    }
}
