import ParleyCore
import Testing

/// Transcripts of the client's cursor: push in, verdict out.
@Suite struct SyncCursorTests {
    @Test func contiguousEventsAdvanceDuplicatesDropAndGapsAreReported() {
        var cursor = SyncCursor()
        #expect(cursor.classify(origin: "eu", userSeq: 1) == .next)
        let advanced = cursor.advance(origin: "eu", userSeq: 1)
        #expect(advanced)
        #expect(cursor.classify(origin: "eu", userSeq: 1) == .duplicate)
        #expect(cursor.classify(origin: "eu", userSeq: 3) == .gap(origin: "eu", after: 1))
        let skipped = cursor.advance(origin: "eu", userSeq: 3)
        #expect(!skipped, "a gap never advances the cursor")
        #expect(cursor.vector["eu"] == 1)
        let otherOrigin = cursor.advance(origin: "us", userSeq: 1)
        #expect(otherOrigin, "origins are independent")
        #expect(cursor.vector == VersionVector(["eu": 1, "us": 1]))
    }
}

@Suite struct IdentifierTests {
    @Test func directConversationsAreTheSameFromBothSides() {
        #expect(ConversationID.direct("bob", "alice") == ConversationID.direct("alice", "bob"))
        let id = ConversationID.direct("bob", "alice")
        #expect(ConversationID.directUsers(of: id)! == ("alice", "bob"))
        #expect(!ConversationID.isGroup(id))
        #expect(ConversationID.groupID(of: ConversationID.group("g1")) == "g1")
    }

    @Test func messageIDsRoundTrip() {
        let id = MessageID(origin: "eu", seq: 42)
        #expect(MessageID(id.description) == id)
        #expect(MessageID("nonsense") == nil)
        #expect(MessageID("-5") == nil)
    }

    @Test func namesKeepToASafeAlphabet() {
        #expect(Naming.isValid("alice_01.x"))
        #expect(!Naming.isValid(""))
        #expect(!Naming.isValid("a:b"))
        #expect(!Naming.isValid(String(repeating: "a", count: 65)))
    }

    @Test func requestErrorsKeepTheConnectionOpenFramingErrorsClose() {
        #expect(ClientErrorCode.malformedFrame.closesConnection)
        #expect(ClientErrorCode.tokenExpired.closesConnection)
        #expect(!ClientErrorCode.notMember.closesConnection)
        #expect(!ClientErrorCode.unavailable.closesConnection)
    }
}
