import ParleyCore
import ParleyProto
import PostgresNIO

/// Reads of a user's conversations: the list, read receipts, members.
extension RegionStore {
    /// The user's conversations, pinned first then newest activity first,
    /// each with its newest message as it stands, unread count, pin and mute.
    public func conversationList(userID: String, limit: Int) async throws -> Parley_ConversationList {
        let rows = try await database.query(
            """
            WITH mine AS (
              SELECT mb.conversation_id, coalesce(a.hlc, 0) AS hlc, coalesce(a.origin, '') AS origin, coalesce(a.seq, 0) AS seq,
                     coalesce((SELECT value = '1' FROM user_settings s
                               WHERE s.user_id = mb.user_id AND s.key = 'pin/' || mb.conversation_id), false) AS pinned
              FROM members mb LEFT JOIN conversation_activity a ON a.conversation_id = mb.conversation_id
              WHERE mb.user_id = \(userID) AND mb.present
              ORDER BY pinned DESC, hlc DESC, origin DESC, seq DESC LIMIT \(limit + 1))
            SELECT c.conversation_id, c.pinned, c.hlc,
                   coalesce((SELECT value FROM registers g WHERE g.conversation_id = c.conversation_id AND g.subject = '' AND g.name = 'name'),
                            (SELECT name FROM conversations v WHERE v.conversation_id = c.conversation_id), ''),
                   coalesce((SELECT value = '1' FROM user_settings s WHERE s.user_id = \(userID) AND s.key = 'mute/' || c.conversation_id), false),
                   e.payload, m.body, m.recalled, m.edit_hlc > 0,
                   (SELECT count(*) FROM messages u
                    JOIN client_messages w ON w.sender = u.sender AND w.client_msg_id = u.client_msg_id AND w.origin = u.origin AND w.seq = u.seq
                    LEFT JOIN read_markers r ON r.conversation_id = c.conversation_id AND r.user_id = \(userID)
                    WHERE u.conversation_id = c.conversation_id AND u.sender <> \(userID) AND NOT u.recalled
                      AND (r.hlc IS NULL OR (u.hlc, u.origin, u.seq) > (r.hlc, r.origin, r.seq))
                      AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = \(userID) AND h.origin = u.origin AND h.seq = u.seq))
            FROM mine c
            LEFT JOIN messages m ON m.origin = c.origin AND m.seq = c.seq
            LEFT JOIN events e ON e.origin = c.origin AND e.seq = c.seq
            ORDER BY c.pinned DESC, c.hlc DESC, c.origin DESC, c.seq DESC
            """,
            logger: logger
        )
        var list = Parley_ConversationList()
        for try await (conversation, pinned, hlc, name, muted, payload, body, recalled, edited, unread) in rows.decode(
            (String, Bool, Int64, String, Bool, ByteBuffer?, String?, Bool?, Bool?, Int64).self
        ) {
            var summary = Parley_ConversationSummary()
            summary.conversationID = conversation
            if let (a, b) = ConversationID.directUsers(of: conversation) {
                summary.name = a == userID ? b : a
            } else {
                summary.name = name
            }
            if let payload, let body {
                var event = try Parley_Event(buffer: payload).forDevice
                event.withCurrentState(body: body, recalled: recalled ?? false, edited: edited ?? false, hidden: false, replaces: [])
                summary.lastMessage = event
            }
            summary.lastActivity = UInt64(hlc)
            summary.unread = UInt64(unread)
            summary.pinned = pinned
            summary.muted = muted
            list.conversations.append(summary)
        }
        list.more = list.conversations.count > limit
        list.conversations = Array(list.conversations.prefix(limit))
        return list
    }

    /// Read receipts in one conversation: per message asked, how many
    /// members other than its sender read it (their marker is at or past
    /// it); and each other member's marker, for conversations of at most 100.
    public func receipts(conversationID: String, messages: [MessageID], reader: String) async throws -> Parley_Receipts {
        var receipts = Parley_Receipts()
        let counts = try await database.query(
            """
            SELECT m.origin || '-' || m.seq, count(r.user_id) FROM messages m
            JOIN unnest(\(messages.map(\.origin))::text[], \(messages.map { Int64($0.seq) })::bigint[]) AS k(origin, seq)
              ON m.origin = k.origin AND m.seq = k.seq
            LEFT JOIN read_markers r ON r.conversation_id = m.conversation_id AND r.user_id <> m.sender
              AND (r.hlc, r.origin, r.seq) >= (m.hlc, m.origin, m.seq)
              AND EXISTS (SELECT 1 FROM members mb WHERE mb.conversation_id = m.conversation_id AND mb.user_id = r.user_id AND mb.present)
            WHERE m.conversation_id = \(conversationID)
            GROUP BY m.origin, m.seq
            """,
            logger: logger
        )
        for try await (id, count) in counts.decode((String, Int64).self) { receipts.readBy[id] = UInt32(count) }
        let markers = try await database.query(
            """
            SELECT r.user_id, r.origin || '-' || r.seq FROM read_markers r
            JOIN members mb ON mb.conversation_id = r.conversation_id AND mb.user_id = r.user_id AND mb.present
            WHERE r.conversation_id = \(conversationID) AND r.user_id <> \(reader)
              AND (SELECT count(*) FROM members c WHERE c.conversation_id = \(conversationID) AND c.present) <= 100
            """,
            logger: logger
        )
        for try await (user, message) in markers.decode((String, String).self) { receipts.markers[user] = message }
        return receipts
    }

    /// The present members of a conversation.
    public func presentMembers(of conversationID: String) async throws -> [String] {
        let rows = try await database.query(
            "SELECT user_id FROM members WHERE conversation_id = \(conversationID) AND present", logger: logger
        )
        var members: [String] = []
        for try await user in rows.decode(String.self) { members.append(user) }
        return members
    }
}
