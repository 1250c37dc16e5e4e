import ParleyCore

/// A seeded generator, so a failing property run can be replayed.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Three regions creating events against what they have seen, with random
/// exchanges in between: concurrent edits, recalls, reads, membership changes,
/// profile writes, settings, group settings and roles, friendships, blocks,
/// deletions for one user,
/// group creations and cross-region duplicates of one client message id. The
/// property tests of the convergence rules (core model and real store) replay
/// the same histories.
public struct RandomHistory: Sendable {
    public static let origins = ["eu", "us", "ap"]
    public static let users = ["ann", "bob", "cat"]
    /// Two direct conversations and one group's.
    public static let conversations = [
        ConversationID.direct("ann", "bob"), ConversationID.direct("bob", "cat"), ConversationID.group("g0"),
    ]

    /// Every event, in the order created (a causal order).
    public var events: [ReplicatedEvent] = []
    /// Each region's state once it has applied everything, event by event.
    public var replicas: [ConvergentState] = []

    public static func generate(events count: Int, using rng: inout SplitMix64) -> RandomHistory {
        var buffers = origins.map { _ in CausalBuffer<ReplicatedEvent>() }
        var states = origins.map { _ in ConvergentState() }
        var clocks = origins.map { _ in HybridLogicalClockState() }
        var log: [ReplicatedEvent] = []
        var time: UInt64 = 1_000

        func deliver(_ event: ReplicatedEvent, to r: Int) {
            for ready in buffers[r].receive(origin: event.id.origin, seq: event.id.seq, deps: event.deps, payload: event) {
                clocks[r].observe(ready.hlc, physicalMilliseconds: time)
                states[r].apply(ready)
            }
        }

        while log.count < count {
            time += UInt64.random(in: 0...3, using: &rng)
            let r = Int.random(in: 0..<origins.count, using: &rng)
            if Int.random(in: 0..<4, using: &rng) == 0, !log.isEmpty {
                // An exchange: region r receives a random sample of the log.
                for event in log where Bool.random(using: &rng) { deliver(event, to: r) }
                continue
            }
            let known = states[r].messages.keys.sorted()
            let user = users.randomElement(using: &rng)!
            let group = "g\(Int.random(in: 0..<2, using: &rng))"
            let body: ReplicatedEvent.Body
            switch Int.random(in: 0..<12, using: &rng) {
            case 0: body = .groupCreated(group: group, name: "n\(log.count)", owner: user, members: [users.randomElement(using: &rng)!])
            case 1: body = .memberAdded(group: group, member: user)
            case 2: body = .memberRemoved(group: group, member: user)
            case 3 where !known.isEmpty: body = .messageEdited(target: known.randomElement(using: &rng)!, body: "edit\(log.count)")
            case 4 where !known.isEmpty: body = .messageRecalled(target: known.randomElement(using: &rng)!)
            case 5 where !known.isEmpty:
                let target = known.randomElement(using: &rng)!
                body = .readMoved(conversation: states[r].messages[target]!.conversation, reader: user, upTo: target)
            case 6: body = .profileSet(user: user, field: "name", value: "v\(log.count)")
            case 7 where Bool.random(using: &rng):
                body = .settingSet(user: user, key: UserSetting.pushToken(device: "phone").key, value: "t\(log.count)")
            case 7:
                let muted = Bool.random(using: &rng)
                body = .settingSet(user: user, key: UserSetting.muted(conversation: "g:\(group)").key, value: UserSetting.muteValue(muted))
            case 9:
                // Group settings and member roles: registers of the group.
                let key = Bool.random(using: &rng) ? RegisterKey.groupName(group) : RegisterKey.role(group, user)
                body = .registerSet(key, value: key.name == "role" ? ["admin", "member"].randomElement(using: &rng)! : "n\(log.count)")
            case 10:
                // Friendships and blocks: registers of a direct conversation.
                let peer = users.filter { $0 != user }.randomElement(using: &rng)!
                if Bool.random(using: &rng) {
                    let states: [Friendship] = [.none, .friends, .requested(by: user, greeting: "hi\(log.count)")]
                    body = .registerSet(.friendship(user, peer), value: states.randomElement(using: &rng)!.registerValue)
                } else {
                    body = .registerSet(.block(by: user, of: peer), value: Bool.random(using: &rng) ? "1" : "")
                }
            case 11 where !known.isEmpty:
                let target = known.randomElement(using: &rng)!
                body = .messageHidden(user: user, target: target, conversation: states[r].messages[target]!.conversation)
            default:
                // A small pool of client ids makes cross-region duplicates likely.
                body = .messagePosted(
                    conversation: conversations.randomElement(using: &rng)!, sender: user,
                    clientMsgID: "m\(Int.random(in: 0..<6, using: &rng))", body: "b\(log.count)"
                )
            }
            let origin = origins[r]
            let event = ReplicatedEvent(
                id: EventID(origin: origin, seq: buffers[r].applied[origin] + 1),
                hlc: clocks[r].now(physicalMilliseconds: time),
                deps: buffers[r].applied, body: body
            )
            log.append(event)
            deliver(event, to: r)
        }
        for r in origins.indices { for event in log { deliver(event, to: r) } }
        return RandomHistory(events: log, replicas: states)
    }

    /// The events as a region might receive them: shuffled, some twice, then
    /// released in a causal order by a `CausalBuffer`.
    public func causalDelivery(using rng: inout SplitMix64) -> [ReplicatedEvent] {
        var arrivals = events + events.filter { _ in Bool.random(using: &rng) }
        arrivals.shuffle(using: &rng)
        var buffer = CausalBuffer<ReplicatedEvent>()
        return arrivals.flatMap { event in
            buffer.receive(origin: event.id.origin, seq: event.id.seq, deps: event.deps, payload: event)
        }
    }

    /// `events` cut into batches of 1 to `maxBatch` events.
    public static func batches(_ events: [ReplicatedEvent], maxBatch: Int, using rng: inout SplitMix64) -> [[ReplicatedEvent]] {
        var batches: [[ReplicatedEvent]] = []
        var next = 0
        while next < events.count {
            let end = min(events.count, next + Int.random(in: 1...maxBatch, using: &rng))
            batches.append(Array(events[next..<end]))
            next = end
        }
        return batches
    }
}
