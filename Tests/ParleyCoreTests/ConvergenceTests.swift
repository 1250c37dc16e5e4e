import ParleyCore
import ParleyTestSupport
import Testing

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
        let create = event("eu", 1, hlc: 10, .groupCreated(group: "g", name: "g", owner: "ann", members: ["bob"]))
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
        #expect(a.messages[post.id]?.body == "", "the tombstone leaves no body")
        #expect(a.messages[post.id]?.edit == nil, "nor the stamp of an edit, whichever arrived first")
        #expect(a.readMarkers[ReaderKey(conversationID: "c", userID: "bob")] == post.order)
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

    @Test func twoReadsOfOneReaderInOneBatchKeepTheHigherOrder() {
        let early = event("eu", 1, hlc: 10, .messagePosted(conversation: "c", sender: "ann", clientMsgID: "a", body: "1"))
        let late = event("eu", 2, hlc: 20, .messagePosted(conversation: "c", sender: "ann", clientMsgID: "b", body: "2"))
        let readLate = event("us", 1, hlc: 30, .readMoved(conversation: "c", reader: "bob", upTo: late.id))
        let readEarly = event("ap", 1, hlc: 40, .readMoved(conversation: "c", reader: "bob", upTo: early.id))
        var state = ConvergentState()
        state.apply([early, late])
        state.apply([readLate, readEarly])
        #expect(state.readMarkers[ReaderKey(conversationID: "c", userID: "bob")] == late.order, "a marker never moves back")
    }

    @Test func aGroupCreatedTwiceConcurrentlyKeepsTheEarliestCreation() {
        let inEU = event("eu", 1, hlc: 50, .groupCreated(group: "g", name: "eu's", owner: "ann", members: []))
        let inUS = event("us", 1, hlc: 40, .groupCreated(group: "g", name: "us's", owner: "bob", members: []))
        var a = ConvergentState()
        var b = ConvergentState()
        a.apply(inEU); a.apply(inUS)
        b.apply([inUS, inEU])
        #expect(a == b)
        #expect(a.groups[ConversationID.group("g")]?.name == "us's")
        #expect(a.members(of: "g") == ["ann", "bob"], "both creators are members: membership is a register per member")
    }

    /// Three regions write concurrently and exchange events at random; then
    /// every event is delivered to fresh replicas in random orders, with
    /// duplicates, through the causal buffer, one event at a time or in
    /// random batches. Every replica ends identical.
    @Test(arguments: 0..<40 as Range<UInt64>)
    func randomHistoriesConvergeInAnyCausalOrderAndBatching(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let history = RandomHistory.generate(events: 120, using: &rng)
        var reference: ConvergentState?
        for round in 0..<4 {
            let delivery = history.causalDelivery(using: &rng)
            #expect(delivery.count == history.events.count, "every event released once")
            var state = ConvergentState()
            if round % 2 == 0 {
                delivery.forEach { state.apply($0) }
            } else {
                RandomHistory.batches(delivery, maxBatch: 12, using: &rng).forEach { state.apply($0) }
            }
            #expect(state.applied.count == history.events.count)
            if let reference { #expect(state == reference, "seed \(seed), round \(round)") } else { reference = state }
        }
        for replica in history.replicas { #expect(replica == reference, "a region that saw everything agrees, seed \(seed)") }
    }
}
