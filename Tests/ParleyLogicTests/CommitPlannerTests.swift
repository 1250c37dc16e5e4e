import ParleyCore
import ParleyProto
import ParleyStore
import Testing

@testable import ParleyLogic

@Suite struct CommitPlannerTests {
    @Test func seqsAreDenseAndHLCsIncreaseEvenWhenTheClockIsBehind() {
        var snapshot = CommitSnapshot()
        snapshot.knownUsers = ["a", "b"]
        let start = CommitStart(origin: "eu", appliedSeq: 10, floorHLC: HLC(rawValue: 1_000), now: HLC(rawValue: 5), deps: ["us": 3])
        var planner = CommitPlanner(start: start, snapshot: snapshot)
        planner.plan([
            .post(Post(sender: "a", senderDevice: "d", clientMsgID: "1", target: .user("b"), body: "x")),
            .register(userID: "c"),
            .post(Post(sender: "a", senderDevice: "d", clientMsgID: "2", target: .user("c"), body: "y")),
        ])
        #expect(planner.events.map(\.seq) == [11, 12, 13])
        #expect(planner.events.map(\.hlc) == [1_001, 1_002, 1_003])
        #expect(planner.events.allSatisfy { $0.deps == ["us": 3] })
        #expect(planner.events[0].audience.map(\.userID) == ["a", "b"])
        #expect(planner.events[2].audience.map(\.userID) == ["a", "c"])
    }
}
