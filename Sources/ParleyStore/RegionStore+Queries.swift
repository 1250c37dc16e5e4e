import ParleyCore
import ParleyProto
import PostgresNIO

/// One page of what a device missed.
public struct SyncPage: Sendable {
    /// Events in (origin, user_seq) order, each with the reader's position.
    public var events: [(position: Parley_UserPosition, event: Parley_Event)]
    public var cursor: VersionVector
    public var more: Bool
}

extension RegionStore {
    /// The events concerning `userID` after `cursor`, for every origin this
    /// region holds, at most `limit` in all. Any region answers the same
    /// cursor the same way, because user_seq is fixed by the origin.
    public func sync(userID: String, after cursor: VersionVector, limit: Int) async throws -> SyncPage {
        var page = SyncPage(events: [], cursor: cursor, more: false)
        let rows = try await database.query(
            "SELECT origin FROM user_counters WHERE user_id = \(userID) ORDER BY origin", logger: logger
        )
        var origins: [String] = []
        for try await origin in rows.decode(String.self) { origins.append(origin) }
        for origin in origins {
            let remaining = limit - page.events.count
            guard remaining > 0 else { page.more = true; break }
            let after = Int64(cursor[origin])
            let events = try await database.query(
                """
                SELECT i.user_seq, e.payload, m.body, m.recalled, m.edit_hlc > 0,
                       m.origin IS NOT NULL AND (c.origin, c.seq) IS DISTINCT FROM (m.origin, m.seq),
                       CASE WHEN (c.origin, c.seq) = (m.origin, m.seq) THEN \(unescaped: Self.otherCopies) END
                FROM inbox i
                JOIN events e ON e.origin = i.origin AND e.seq = i.event_seq
                LEFT JOIN messages m ON e.kind = 2 AND m.origin = e.origin AND m.seq = e.seq
                LEFT JOIN client_messages c ON c.sender = m.sender AND c.client_msg_id = m.client_msg_id
                WHERE i.user_id = \(userID) AND i.origin = \(origin) AND i.user_seq > \(after)
                ORDER BY i.user_seq LIMIT \(remaining + 1)
                """,
                logger: logger
            )
            var taken = 0
            for try await (userSeq, payload, body, recalled, edited, hidden, replaces) in events.decode(
                (Int64, ByteBuffer, String?, Bool?, Bool?, Bool?, [String]?).self
            ) {
                if taken == remaining { page.more = true; break }
                taken += 1
                let position = Parley_UserPosition.with {
                    $0.origin = origin
                    $0.userSeq = UInt64(userSeq)
                }
                var event = try Parley_Event(buffer: payload).forDevice
                if let body {
                    event.withCurrentState(
                        body: body, recalled: recalled ?? false, edited: edited ?? false, hidden: hidden ?? false, replaces: replaces ?? []
                    )
                }
                page.events.append((position, event))
                page.cursor[origin] = UInt64(userSeq)
            }
        }
        return page
    }

    /// Messages of a conversation, newest first, before `before` (exclusive);
    /// nil when `before` is not a message of that conversation. Who may read
    /// it is logic's to decide (`access`).
    /// Messages `reader` deleted for themselves are left out.
    public func history(
        conversationID: String, before: MessageID?, limit: Int, reader: String = ""
    ) async throws -> (messages: [Parley_Event], more: Bool)? {
        var bound = (hlc: Int64.max, origin: "", seq: Int64.max)
        if let before {
            let rows = try await database.query(
                "SELECT hlc FROM messages WHERE origin = \(before.origin) AND seq = \(Int64(before.seq)) AND conversation_id = \(conversationID)",
                logger: logger
            ).collect()
            guard let row = rows.first else { return nil }
            bound = (try row.decode(Int64.self), before.origin, Int64(before.seq))
        }
        let rows = try await database.query(
            """
            SELECT e.payload, m.body, m.recalled, m.edit_hlc > 0, \(unescaped: Self.otherCopies) FROM messages m
            JOIN events e ON e.origin = m.origin AND e.seq = m.seq
            -- hidden duplicates (another message won their client id) are left out
            JOIN client_messages c ON c.sender = m.sender AND c.client_msg_id = m.client_msg_id
              AND c.origin = m.origin AND c.seq = m.seq
            WHERE m.conversation_id = \(conversationID)
              AND (m.hlc, m.origin, m.seq) < (\(bound.hlc), \(bound.origin), \(bound.seq))
              AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = \(reader) AND h.origin = m.origin AND h.seq = m.seq)
            ORDER BY m.hlc DESC, m.origin DESC, m.seq DESC LIMIT \(limit + 1)
            """,
            logger: logger
        )
        var messages: [Parley_Event] = []
        for try await (payload, body, recalled, edited, replaces) in rows.decode((ByteBuffer, String, Bool, Bool, [String]).self) {
            var event = try Parley_Event(buffer: payload).forDevice
            event.withCurrentState(body: body, recalled: recalled, edited: edited, hidden: false, replaces: replaces)
            messages.append(event)
        }
        let more = messages.count > limit
        return (Array(messages.prefix(limit)), more)
    }

    /// Per conversation of the user, the messages from others after their
    /// read marker (recalled, hidden and deleted-for-them ones left out).
    public func unreadCounts(userID: String) async throws -> [String: UInt64] {
        let rows = try await database.query(
            """
            SELECT mb.conversation_id, count(m.seq) FROM members mb
            JOIN messages m ON m.conversation_id = mb.conversation_id AND m.sender <> mb.user_id AND NOT m.recalled
            JOIN client_messages c ON c.sender = m.sender AND c.client_msg_id = m.client_msg_id
              AND c.origin = m.origin AND c.seq = m.seq
            LEFT JOIN read_markers r ON r.conversation_id = mb.conversation_id AND r.user_id = mb.user_id
            WHERE mb.user_id = \(userID) AND mb.present
              AND (r.hlc IS NULL OR (m.hlc, m.origin, m.seq) > (r.hlc, r.origin, r.seq))
              AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = mb.user_id AND h.origin = m.origin AND h.seq = m.seq)
            GROUP BY mb.conversation_id
            """,
            logger: logger
        )
        var counts: [String: UInt64] = [:]
        for try await (id, count) in rows.decode((String, Int64).self) { counts[id] = UInt64(count) }
        return counts
    }

    /// The highest contiguous seq stored for each origin.
    public func appliedVector() async throws -> VersionVector {
        var vector = VersionVector()
        let rows = try await database.query("SELECT origin, applied_seq FROM origins", logger: logger)
        for try await (origin, seq) in rows.decode((String, Int64).self) { vector[origin] = UInt64(seq) }
        return vector
    }

    /// Events of one origin in seq order, from `after` (exclusive): the log as a peer or a test reads it.
    public func events(origin: String, after: UInt64, limit: Int) async throws -> [Parley_Event] {
        let rows = try await database.query(
            "SELECT payload FROM events WHERE origin = \(origin) AND seq > \(Int64(after)) ORDER BY seq LIMIT \(limit)",
            logger: logger
        )
        var events: [Parley_Event] = []
        for try await payload in rows.decode(ByteBuffer.self) { events.append(try Parley_Event(buffer: payload)) }
        return events
    }

    /// How a user stands towards a conversation.
    public func access(userID: String, conversationID: String) async throws -> ConversationAccess {
        let rows = try await database.query(
            "SELECT 1 FROM members WHERE conversation_id = \(conversationID) AND user_id = \(userID) AND present", logger: logger
        ).collect()
        guard rows.isEmpty else { return .member }
        let known = try await database.query(
            "SELECT 1 FROM conversations WHERE conversation_id = \(conversationID)", logger: logger
        ).collect()
        return known.isEmpty ? .unknownConversation : .notMember
    }
}

public enum ConversationAccess: Sendable {
    case member, notMember, unknownConversation
}

extension RegionStore {
    /// For a message row `m`: the ids of the other copies of its sender's
    /// client_msg_id, oldest first (empty for nearly every message). Asked of
    /// the winner only: the copies it replaces on a device.
    static let otherCopies = """
        ARRAY(SELECT o.origin || '-' || o.seq FROM messages o
              WHERE o.sender = m.sender AND o.client_msg_id = m.client_msg_id AND (o.origin, o.seq) <> (m.origin, m.seq)
              ORDER BY o.hlc, o.origin)
        """

    /// Replicated messages as they stand now, for their live push: a copy that
    /// lost its client_msg_id to one already here is `hidden`; one that won
    /// lists the copies it `replaces`. Other events are returned unchanged.
    func withDuplicateState(_ events: [Parley_Event]) async throws -> [Parley_Event] {
        let messages = events.filter { if case .messagePosted = $0.kind { true } else { false } }
        guard !messages.isEmpty else { return events }
        let rows = try await database.query(
            """
            SELECT m.origin, m.seq, (c.origin, c.seq) <> (m.origin, m.seq),
                   CASE WHEN (c.origin, c.seq) = (m.origin, m.seq) THEN \(unescaped: Self.otherCopies) ELSE '{}' END
            FROM unnest(\(messages.map(\.origin))::text[], \(messages.map { Int64($0.seq) })::bigint[]) AS k(origin, seq)
            JOIN messages m ON m.origin = k.origin AND m.seq = k.seq
            JOIN client_messages c ON c.sender = m.sender AND c.client_msg_id = m.client_msg_id
            """,
            logger: logger
        )
        var state: [MessageID: (hidden: Bool, replaces: [String])] = [:]
        for try await (origin, seq, hidden, replaces) in rows.decode((String, Int64, Bool, [String]).self)
        where hidden || !replaces.isEmpty {
            state[MessageID(origin: origin, seq: UInt64(seq))] = (hidden, replaces)
        }
        guard !state.isEmpty else { return events }
        return events.map { event in
            guard let copy = state[MessageID(origin: event.origin, seq: event.seq)] else { return event }
            var event = event
            event.messagePosted.hidden = copy.hidden
            event.messagePosted.replaces = copy.replaces
            return event
        }
    }

    /// A user's profile fields; nil for a user this region does not know.
    public func profile(of userID: String) async throws -> [String: String]? {
        let known = try await database.query("SELECT 1 FROM users WHERE user_id = \(userID)", logger: logger).collect()
        guard !known.isEmpty else { return nil }
        var fields: [String: String] = [:]
        let rows = try await database.query("SELECT field, value FROM profiles WHERE user_id = \(userID)", logger: logger)
        for try await (field, value) in rows.decode((String, String).self) { fields[field] = value }
        return fields
    }
}

extension Parley_Event {
    /// A posted message as it stands now rather than as it was posted.
    mutating func withCurrentState(body: String, recalled: Bool, edited: Bool, hidden: Bool, replaces: [String]) {
        guard case .messagePosted = kind else { return }
        messagePosted.body = body
        messagePosted.recalled = recalled
        messagePosted.edited = edited
        messagePosted.hidden = hidden
        messagePosted.replaces = replaces
    }

    /// The event as a device sees it: without the server-side audience and deps.
    public var forDevice: Parley_Event {
        var copy = self
        copy.audience = []
        copy.deps = [:]
        copy.traceParent = ""
        return copy
    }
}
