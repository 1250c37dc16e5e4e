import ParleyCore
import Testing

/// A seeded generator, so a failing property run can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct CausalBufferTests {
    @Test func holdsAnEventUntilItsOriginPredecessorAndDepsArrive() {
        var buffer = CausalBuffer<String>()
        // us-1 depends on eu-2, which depends on eu-1.
        #expect(buffer.receive(origin: "us", seq: 1, deps: VersionVector(["eu": 2]), payload: "us-1").isEmpty)
        #expect(buffer.receive(origin: "eu", seq: 2, deps: VersionVector(["eu": 1]), payload: "eu-2").isEmpty)
        #expect(buffer.waitingCount == 2)
        #expect(buffer.receive(origin: "eu", seq: 1, deps: VersionVector(), payload: "eu-1") == ["eu-1", "eu-2", "us-1"])
        #expect(buffer.applied == VersionVector(["eu": 2, "us": 1]))
        #expect(buffer.receive(origin: "eu", seq: 2, deps: VersionVector(["eu": 1]), payload: "again").isEmpty, "duplicates are dropped")
        #expect(buffer.waitingCount == 0)
    }
}

@Suite struct ConvergentStateTests {
    private func event(_ origin: String, _ seq: UInt64, hlc: UInt64, _ body: ReplicatedEvent.Body) -> ReplicatedEvent {
        ReplicatedEvent(id: EventID(origin: origin, seq: seq), hlc: HLC(rawValue: hlc), deps: VersionVector(), body: body)
    }

    @Test func concurrentAddAndRemoveOfAMemberResolveToTheLaterStamp() {
        let create = event("eu", 1, hlc: 10, .groupCreated(group: "g", owner: "ann", members: ["bob"]))
        let remove = event("eu", 2, hlc: 20, .memberRemoved(group: "g", member: "bob"))
        let add = event("us", 1, hlc: 25, .memberAdded(group: "g", member: "bob"))
        for order in [[create, remove, add], [create, add, remove]] {
            var state = ConvergentState()
            order.forEach { state.apply($0) }
            #expect(state.members(of: "g") == ["ann", "bob"], "the add at hlc 25 is later than the remove at 20")
        }
    }

    @Test func aRecallWinsOverAConcurrentEditAndAReadStillCounts() {
        let post = event("eu", 1, hlc: 10, .messagePosted(conversation: "c", sender: "ann", clientMsgID: "m", body: "hi"))
        let edit = event("us", 1, hlc: 30, .messageEdited(target: post.id, body: "hello"))
        let recall = event("eu", 2, hlc: 20, .messageRecalled(target: post.id))
        let read = event("ap", 1, hlc: 25, .readMoved(conversation: "c", reader: "bob", upTo: post.id))
        var a = ConvergentState()
        var b = ConvergentState()
        [post, edit, recall, read].forEach { a.apply($0) }
        [post, read, recall, edit].forEach { b.apply($0) }
        #expect(a == b)
        #expect(a.messages[post.id]?.recalled == true)
        #expect(a.messages[post.id]?.body == "hello", "the edit is kept but the tombstone hides the message")
        #expect(a.readMarkers[.init(conversation: "c", reader: "bob")] == post.order)
    }

    @Test func theSameClientMessageAcceptedTwiceShowsOnceEverywhere() {
        let inEU = event("eu", 1, hlc: 50, .messagePosted(conversation: "c", sender: "ann", clientMsgID: "x", body: "once"))
        let inUS = event("us", 1, hlc: 40, .messagePosted(conversation: "c", sender: "ann", clientMsgID: "x", body: "once"))
        var a = ConvergentState()
        var b = ConvergentState()
        a.apply(inEU); a.apply(inUS)
        b.apply(inUS); b.apply(inEU)
        #expect(a == b)
        #expect(a.conversation("c").map(\.id) == [inUS.id], "the lower (hlc, origin) wins")
        #expect(a.isHidden(inEU.id))
    }

    /// Three regions write concurrently and exchange events at random; then
    /// every event is delivered to fresh replicas in random orders, with
    /// duplicates, through the causal buffer. Every replica ends identical.
    @Test(arguments: 0..<40 as Range<UInt64>)
    func randomHistoriesConvergeInAnyCausalOrder(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        let history = RandomHistory.generate(events: 120, using: &rng)
        var reference: ConvergentState?
        for _ in 0..<4 {
            var deliveries = history.events + history.events.filter { _ in Bool.random(using: &rng) }
            deliveries.shuffle(using: &rng)
            var buffer = CausalBuffer<ReplicatedEvent>()
            var state = ConvergentState()
            for event in deliveries {
                for ready in buffer.receive(origin: event.id.origin, seq: event.id.seq, deps: event.deps, payload: event) {
                    state.apply(ready)
                }
            }
            #expect(buffer.waitingCount == 0)
            #expect(state.applied.count == history.events.count)
            if let reference { #expect(state == reference, "seed \(seed)") } else { reference = state }
        }
        for replica in history.replicas { #expect(replica == reference, "a region that saw everything agrees, seed \(seed)") }
    }
}

/// Regions creating events against what they have seen, with exchanges in between.
struct RandomHistory {
    var events: [ReplicatedEvent] = []
    var replicas: [ConvergentState] = []

    static func generate(events count: Int, using rng: inout SplitMix64) -> RandomHistory {
        let origins = ["eu", "us", "ap"]
        let users = ["ann", "bob", "cat"]
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
            let body: ReplicatedEvent.Body
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: body = .groupCreated(group: "g\(Int.random(in: 0..<2, using: &rng))", owner: users.randomElement(using: &rng)!, members: [users.randomElement(using: &rng)!])
            case 1: body = .memberAdded(group: "g\(Int.random(in: 0..<2, using: &rng))", member: users.randomElement(using: &rng)!)
            case 2: body = .memberRemoved(group: "g\(Int.random(in: 0..<2, using: &rng))", member: users.randomElement(using: &rng)!)
            case 3 where !known.isEmpty: body = .messageEdited(target: known.randomElement(using: &rng)!, body: "edit\(log.count)")
            case 4 where !known.isEmpty: body = .messageRecalled(target: known.randomElement(using: &rng)!)
            case 5 where !known.isEmpty:
                let target = known.randomElement(using: &rng)!
                body = .readMoved(conversation: states[r].messages[target]!.conversation, reader: users.randomElement(using: &rng)!, upTo: target)
            case 6: body = .profileSet(user: users.randomElement(using: &rng)!, field: "name", value: "v\(log.count)")
            default:
                // A small pool of client ids makes cross-region duplicates likely.
                body = .messagePosted(
                    conversation: "c\(Int.random(in: 0..<3, using: &rng))", sender: users.randomElement(using: &rng)!,
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
}
