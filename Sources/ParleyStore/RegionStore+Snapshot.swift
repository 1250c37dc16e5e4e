import Logging
import ParleyCore
import ParleyProto
import PostgresNIO

extension RegionStore {
    /// Loads, in a few set-based queries, everything the planner checks.
    static func loadSnapshot(for commands: [StoreCommand], _ tx: PostgresConnection, _ logger: Logger) async throws -> CommitSnapshot {
        var users: Set<String> = []
        var conversations: Set<String> = []
        var postKeys: [PostKey] = []
        var messageIDs: Set<MessageID> = []
        var readers: [ReaderKey] = []
        for command in commands {
            switch command {
            case .register(let userID):
                users.insert(userID)
            case .post(let post):
                users.insert(post.sender)
                if case .user(let peer) = post.target { users.insert(peer) }
                conversations.insert(post.conversationID)
                postKeys.append(PostKey(sender: post.sender, clientMsgID: post.clientMsgID))
            case .markRead(let reader, let conversationID, let messageID):
                conversations.insert(conversationID)
                messageIDs.insert(messageID)
                readers.append(ReaderKey(conversationID: conversationID, userID: reader))
            case .createGroup(let owner, let groupID, _, let members):
                users.formUnion(members)
                users.insert(owner)
                conversations.insert(ConversationID.group(groupID))
            }
        }
        // One round trip: each part is tagged with its kind in column k.
        let ids = Array(messageIDs)
        let rows = try await tx.query(
            """
            SELECT 1 AS k, user_id AS a, '' AS b, '' AS c, NULL::bytea AS p, 0::bigint AS n, 0::bigint AS h
              FROM users WHERE user_id = ANY(\(Array(users))::text[])
            UNION ALL SELECT 2, conversation_id, '', '', NULL, 0, 0
              FROM conversations WHERE conversation_id = ANY(\(Array(conversations))::text[])
            UNION ALL SELECT 3, conversation_id, user_id, '', NULL, 0, 0
              FROM members WHERE conversation_id = ANY(\(Array(conversations))::text[])
            UNION ALL SELECT 4, c.sender, c.client_msg_id, '', e.payload, 0, 0
              FROM client_messages c JOIN events e ON e.origin = c.origin AND e.seq = c.seq
              WHERE (c.sender, c.client_msg_id) IN (
                SELECT * FROM unnest(\(postKeys.map(\.sender))::text[], \(postKeys.map(\.clientMsgID))::text[]))
            UNION ALL SELECT 5, origin, conversation_id, '', NULL, seq, hlc
              FROM messages WHERE (origin, seq) IN (
                SELECT * FROM unnest(\(ids.map(\.origin))::text[], \(ids.map { Int64($0.seq) })::bigint[]))
            UNION ALL SELECT 6, conversation_id, user_id, origin, NULL, seq, hlc
              FROM read_markers WHERE (conversation_id, user_id) IN (
                SELECT * FROM unnest(\(readers.map(\.conversationID))::text[], \(readers.map(\.userID))::text[]))
            """,
            logger: logger
        )
        var snapshot = CommitSnapshot()
        for try await (kind, a, b, c, payload, n, h) in rows.decode((Int32, String, String, String, ByteBuffer?, Int64, Int64).self) {
            switch kind {
            case 1: snapshot.knownUsers.insert(a)
            case 2: snapshot.conversations.insert(a)
            case 3: snapshot.members[a, default: []].insert(b)
            case 4:
                if let payload { snapshot.storedPosts[PostKey(sender: a, clientMsgID: b)] = try Parley_Event(buffer: payload) }
            case 5:
                let order = ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: a, seq: UInt64(n))
                snapshot.messages[MessageID(origin: a, seq: UInt64(n))] = (b, order)
            default:
                snapshot.readMarkers[ReaderKey(conversationID: a, userID: b)] =
                    ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: c, seq: UInt64(n))
            }
        }
        return snapshot
    }
}

extension Parley_Event {
    init(buffer: ByteBuffer) throws {
        try self.init(serializedBytes: Array(buffer.readableBytesView))
    }

    var encodedBuffer: ByteBuffer {
        // Encoding an in-memory message cannot fail.
        ByteBuffer(bytes: (try? serializedBytes() as [UInt8]) ?? [])
    }
}
