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
        var snapshot = CommitSnapshot()
        if !users.isEmpty {
            let rows = try await tx.query("SELECT user_id FROM users WHERE user_id = ANY(\(Array(users)))", logger: logger)
            for try await user in rows.decode(String.self) { snapshot.knownUsers.insert(user) }
        }
        if !conversations.isEmpty {
            let list = Array(conversations)
            let rows = try await tx.query(
                "SELECT conversation_id FROM conversations WHERE conversation_id = ANY(\(list))", logger: logger
            )
            for try await id in rows.decode(String.self) { snapshot.conversations.insert(id) }
            let memberRows = try await tx.query(
                "SELECT conversation_id, user_id FROM members WHERE conversation_id = ANY(\(list))", logger: logger
            )
            for try await (id, user) in memberRows.decode((String, String).self) {
                snapshot.members[id, default: []].insert(user)
            }
        }
        if !postKeys.isEmpty {
            let rows = try await tx.query(
                """
                SELECT c.sender, c.client_msg_id, e.payload FROM client_messages c
                JOIN events e ON e.origin = c.origin AND e.seq = c.seq
                WHERE (c.sender, c.client_msg_id) IN (
                    SELECT * FROM unnest(\(postKeys.map(\.sender))::text[], \(postKeys.map(\.clientMsgID))::text[]))
                """,
                logger: logger
            )
            for try await (sender, clientMsgID, payload) in rows.decode((String, String, ByteBuffer).self) {
                snapshot.storedPosts[PostKey(sender: sender, clientMsgID: clientMsgID)] = try Parley_Event(buffer: payload)
            }
        }
        if !messageIDs.isEmpty {
            let ids = Array(messageIDs)
            let rows = try await tx.query(
                """
                SELECT origin, seq, conversation_id, hlc FROM messages
                WHERE (origin, seq) IN (SELECT * FROM unnest(\(ids.map(\.origin))::text[], \(ids.map { Int64($0.seq) })::bigint[]))
                """,
                logger: logger
            )
            for try await (origin, seq, conversationID, hlc) in rows.decode((String, Int64, String, Int64).self) {
                let order = ConversationOrder(hlc: HLC(rawValue: UInt64(hlc)), origin: origin, seq: UInt64(seq))
                snapshot.messages[MessageID(origin: origin, seq: UInt64(seq))] = (conversationID, order)
            }
        }
        if !readers.isEmpty {
            let rows = try await tx.query(
                """
                SELECT conversation_id, user_id, hlc, origin, seq FROM read_markers
                WHERE (conversation_id, user_id) IN (
                    SELECT * FROM unnest(\(readers.map(\.conversationID))::text[], \(readers.map(\.userID))::text[]))
                """,
                logger: logger
            )
            for try await (id, user, hlc, origin, seq) in rows.decode((String, String, Int64, String, Int64).self) {
                snapshot.readMarkers[ReaderKey(conversationID: id, userID: user)] =
                    ConversationOrder(hlc: HLC(rawValue: UInt64(hlc)), origin: origin, seq: UInt64(seq))
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
