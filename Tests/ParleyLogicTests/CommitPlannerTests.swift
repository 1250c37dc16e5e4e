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

    @Test func aUserMutesOnlyWhatTheyArePartOfAndRegistersPushForTheirOwnDevice() {
        var snapshot = CommitSnapshot()
        snapshot.knownUsers = ["a", "b"]
        snapshot.conversations = ["g:team"]
        snapshot.members = ["g:team": ["a"]]
        let start = CommitStart(origin: "eu", appliedSeq: 0, floorHLC: HLC(rawValue: 1), now: HLC(rawValue: 5), deps: [:])
        var planner = CommitPlanner(start: start, snapshot: snapshot)
        planner.plan([
            .mute(userID: "a", conversationID: "g:team", muted: true),
            .mute(userID: "b", conversationID: "g:team", muted: true),
            .mute(userID: "a", conversationID: "g:nope", muted: true),
            .mute(userID: "a", conversationID: "d:b:c", muted: true),
            .mute(userID: "a", conversationID: "d:a:b", muted: false),
            .mute(userID: "b", conversationID: "", muted: true),
            .registerPush(userID: "a", deviceID: "phone", token: "tok"),
        ])
        let codes = planner.outcomes.map { outcome -> String in
            switch outcome {
            case .committed: "ok"
            case .rejected(let error): error.code.description
            case .duplicate, .unchanged: "other"
            }
        }
        #expect(codes == ["ok", "not_member", "unknown_conversation", "not_member", "ok", "ok", "ok"])
        #expect(planner.events.map(\.audience).map { $0.map(\.userID) } == [["a"], ["a"], ["b"], ["a"]])
        #expect(planner.events[0].conversationMuted.muted && planner.events[0].conversationMuted.conversationID == "g:team")
        #expect(planner.events[3].pushRegistered.deviceID == "phone" && planner.events[3].pushRegistered.token == "tok")
    }

    @Test func aServiceNoticeConcernsItsReaderOnlyAndIsStoredOncePerReader() {
        var snapshot = CommitSnapshot()
        snapshot.knownUsers = ["a", "b"]
        let start = CommitStart(origin: "eu", appliedSeq: 0, floorHLC: HLC(rawValue: 1), now: HLC(rawValue: 5), deps: [:])
        var planner = CommitPlanner(start: start, snapshot: snapshot)
        let service = ServiceAccount.userID(of: "orders")
        planner.plan([
            .post(Post(sender: service, senderDevice: "platform", clientMsgID: "n/1/a", target: .user("a"), body: "shipped")),
            .post(Post(sender: service, senderDevice: "platform", clientMsgID: "n/1/b", target: .user("b"), body: "shipped")),
            .post(Post(sender: service, senderDevice: "platform", clientMsgID: "n/1/a", target: .user("a"), body: "shipped")),
            .post(Post(sender: service, senderDevice: "platform", clientMsgID: "n/1/z", target: .user("z"), body: "shipped")),
        ])
        let outcomes = planner.outcomes.map { outcome -> String in
            switch outcome {
            case .committed: "ok"
            case .duplicate: "duplicate"
            case .rejected(let error): error.code.description
            case .unchanged: "unchanged"
            }
        }
        #expect(outcomes == ["ok", "ok", "duplicate", "unknown_user"])
        #expect(planner.events.map { $0.audience.map(\.userID) } == [["a"], ["b"]])
        #expect(planner.events[0].messagePosted.conversationID == "d:a:~orders")
    }
}
