import Logging
import ParleyCore
import PostgresNIO

/// A notification ext owes one offline device for one message.
public struct OwedNotification: Sendable, Equatable {
    public var userID: String
    public var deviceID: String
    public var token: String
    public var seq: UInt64
    public var messageID: String
    public var conversationID: String
    public var sender: String
    public var preview: String

    public init(
        userID: String, deviceID: String, token: String, seq: UInt64, messageID: String, conversationID: String, sender: String,
        preview: String
    ) {
        self.userID = userID
        self.deviceID = deviceID
        self.token = token
        self.seq = seq
        self.messageID = messageID
        self.conversationID = conversationID
        self.sender = sender
        self.preview = preview
    }
}

/// A collapsed notification taken from the outbox to send: every message
/// that reached the device while it waited, the latest shown.
public struct OutboxNotification: Sendable, Equatable {
    public var id: Int64
    public var userID: String
    public var deviceID: String
    public var token: String
    public var messages: Int
    public var latestMessageID: String
    public var latestConversationID: String
    public var latestSender: String
    public var latestPreview: String
    /// Tries before this one.
    public var attempts: Int
}

/// What ext's cursor keeper found: events it must hand out again.
public struct ExtProgress: Sendable, Equatable {
    /// Every event of the origin up to this seq is done.
    public var doneSeq: UInt64
    /// Events not done although they were in the log `rederiveAfter` ago:
    /// their work was lost (Redis flushed, an announcement failed).
    public var lost: ClosedRange<UInt64>?
}

// ext's follow-up work (docs/ARCHITECTURE.md, "Follow-up work: ext"). Redis
// carries the work; these tables are the truth of what is done, so a job
// done twice has one effect and a flushed Redis loses nothing.
extension RegionStore {
    /// Records events `first...last` of `origin` as done, with the
    /// notifications they owe, in one statement: only events not done before
    /// add their notifications, so a job done twice (a redelivery, a lost
    /// job derived again) notifies nobody twice. A notification joins the
    /// device's open one (a burst collapses into one) or opens one due after
    /// `collapse`. Returns how many of the events were new.
    public func recordDone(origin: String, first: UInt64, last: UInt64, owed: [OwedNotification], collapse: Duration) async throws -> Int {
        let users = owed.map(\.userID), devices = owed.map(\.deviceID), tokens = owed.map(\.token), seqs = owed.map { Int64($0.seq) }
        let messages = owed.map(\.messageID), conversations = owed.map(\.conversationID), senders = owed.map(\.sender)
        let previews = owed.map(\.preview)
        let rows = try await database.query(
            """
            WITH done AS (
                   INSERT INTO ext_done (origin, seq)
                   SELECT \(origin), s FROM generate_series(\(Int64(first)), \(Int64(last))) AS s
                   WHERE s > (SELECT done_seq FROM ext_cursors WHERE origin = \(origin))
                   ON CONFLICT DO NOTHING RETURNING seq),
                 owed AS (
                   SELECT * FROM unnest(\(users)::text[], \(devices)::text[], \(tokens)::text[], \(seqs)::bigint[], \(messages)::text[],
                                        \(conversations)::text[], \(senders)::text[], \(previews)::text[])
                     AS o(user_id, device_id, token, seq, message, conversation, sender, preview)
                   WHERE o.seq IN (SELECT seq FROM done)),
                 burst AS (
                   SELECT user_id, device_id, count(*) AS messages, max(seq) AS latest_seq,
                          (array_agg(token ORDER BY seq DESC))[1] AS token,
                          (array_agg(message ORDER BY seq DESC))[1] AS message,
                          (array_agg(conversation ORDER BY seq DESC))[1] AS conversation,
                          (array_agg(sender ORDER BY seq DESC))[1] AS sender,
                          (array_agg(preview ORDER BY seq DESC))[1] AS preview
                   FROM owed GROUP BY user_id, device_id ORDER BY user_id, device_id),
                 queued AS (
                   INSERT INTO push_outbox AS p (user_id, device_id, token, messages, latest_seq, latest_message, latest_conversation,
                                                 latest_sender, latest_preview, due_at)
                   SELECT user_id, device_id, token, messages, latest_seq, message, conversation, sender, preview,
                          now() + \(collapse.milliseconds) * interval '1 millisecond'
                   FROM burst
                   ON CONFLICT (user_id, device_id) WHERE NOT sending DO UPDATE SET
                     messages = p.messages + excluded.messages,
                     latest_seq = GREATEST(p.latest_seq, excluded.latest_seq),
                     token = CASE WHEN excluded.latest_seq > p.latest_seq THEN excluded.token ELSE p.token END,
                     latest_message = CASE WHEN excluded.latest_seq > p.latest_seq THEN excluded.latest_message ELSE p.latest_message END,
                     latest_conversation = CASE WHEN excluded.latest_seq > p.latest_seq THEN excluded.latest_conversation
                                                ELSE p.latest_conversation END,
                     latest_sender = CASE WHEN excluded.latest_seq > p.latest_seq THEN excluded.latest_sender ELSE p.latest_sender END,
                     latest_preview = CASE WHEN excluded.latest_seq > p.latest_seq THEN excluded.latest_preview ELSE p.latest_preview END
                   RETURNING 1)
            SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM queued)
            """,
            logger: logger
        )
        for try await (done, _) in rows.decode((Int64, Int64).self) { return Int(done) }
        return 0
    }

    /// Moves `origin`'s done cursor over the events done in a row, and says
    /// which events were in the log `rederiveAfter` ago and are still not
    /// done. One ext instance at a time does it (a transaction-scoped
    /// advisory lock); nil when another one is at it.
    public func advanceExtCursor(origin: String, rederiveAfter: Duration) async throws -> ExtProgress? {
        return try await database.withTransaction { tx in
            // One lock id for "extc" (ext cursor).
            let locked = try await tx.query("SELECT pg_try_advisory_xact_lock(1702392931)", logger: logger)
            for try await granted in locked.decode(Bool.self) where !granted { return nil }
            try await tx.query(
                """
                INSERT INTO ext_cursors (origin, done_seq, seen_head)
                SELECT \(origin), 0, 0 ON CONFLICT DO NOTHING
                """,
                logger: logger
            )
            let rows = try await tx.query(
                """
                SELECT c.done_seq, c.seen_head, c.seen_at < now() - \(rederiveAfter.milliseconds) * interval '1 millisecond', coalesce(o.applied_seq, 0)
                FROM ext_cursors c LEFT JOIN origins o ON o.origin = c.origin WHERE c.origin = \(origin) FOR UPDATE OF c
                """,
                logger: logger
            )
            var cursor: (done: Int64, seen: Int64, stale: Bool, head: Int64) = (0, 0, false, 0)
            for try await row in rows.decode((Int64, Int64, Bool, Int64).self) { cursor = row }
            // The first seq not done, looked for in the next 100,000 at most.
            let upper = min(cursor.head, cursor.done + 100_000)
            var done = cursor.done
            if upper > cursor.done {
                let gap = try await tx.query(
                    """
                    SELECT coalesce(min(s), \(upper + 1)) FROM generate_series(\(cursor.done + 1), \(upper)) AS s
                    WHERE NOT EXISTS (SELECT 1 FROM ext_done d WHERE d.origin = \(origin) AND d.seq = s)
                    """,
                    logger: logger
                )
                for try await first in gap.decode(Int64.self) { done = first - 1 }
                try await tx.query("DELETE FROM ext_done WHERE origin = \(origin) AND seq <= \(done)", logger: logger)
            }
            var lost: ClosedRange<UInt64>?
            if cursor.stale {
                if done < cursor.seen { lost = UInt64(done + 1)...UInt64(cursor.seen) }
                try await tx.query(
                    "UPDATE ext_cursors SET done_seq = \(done), seen_head = \(cursor.head), seen_at = now() WHERE origin = \(origin)",
                    logger: logger
                )
            } else {
                try await tx.query("UPDATE ext_cursors SET done_seq = \(done) WHERE origin = \(origin)", logger: logger)
            }
            return ExtProgress(doneSeq: UInt64(done), lost: lost)
        }
    }

    /// The private settings (`UserSetting`) of each user that has any set.
    public func settings(of userIDs: [String]) async throws -> [String: [UserSetting: String]] {
        guard !userIDs.isEmpty else { return [:] }
        let rows = try await database.query(
            "SELECT user_id, key, value FROM user_settings WHERE user_id = ANY(\(userIDs)) AND value <> ''", logger: logger
        )
        var settings: [String: [UserSetting: String]] = [:]
        for try await (user, key, value) in rows.decode((String, String, String).self) {
            if let setting = UserSetting(key: key) { settings[user, default: [:]][setting] = value }
        }
        return settings
    }

    /// Takes up to `limit` notifications that are due (their collapse
    /// window closed, their retry wait over, or their sender gone silent
    /// for `lease`) and leases them to the caller for `lease`.
    public func takeDueNotifications(limit: Int, lease: Duration) async throws -> [OutboxNotification] {
        let rows = try await database.query(
            """
            UPDATE push_outbox p SET sending = true, due_at = now() + \(lease.milliseconds) * interval '1 millisecond'
            FROM (SELECT id, attempts FROM push_outbox WHERE due_at <= now() ORDER BY due_at LIMIT \(limit) FOR UPDATE SKIP LOCKED) d
            WHERE p.id = d.id
            RETURNING p.id, p.user_id, p.device_id, p.token, p.messages, p.latest_message, p.latest_conversation, p.latest_sender,
                      p.latest_preview, d.attempts
            """,
            logger: logger
        )
        var taken: [OutboxNotification] = []
        for try await row in rows.decode((Int64, String, String, String, Int32, String, String, String, String, Int32).self) {
            taken.append(OutboxNotification(
                id: row.0, userID: row.1, deviceID: row.2, token: row.3, messages: Int(row.4), latestMessageID: row.5,
                latestConversationID: row.6, latestSender: row.7, latestPreview: row.8, attempts: Int(row.9)
            ))
        }
        return taken
    }

    /// The notification was delivered, or will never be (given up, or its
    /// device came back online): it leaves the outbox.
    public func forgetNotification(id: Int64) async throws {
        try await database.query("DELETE FROM push_outbox WHERE id = \(id)", logger: logger)
    }

    /// A send failed: the notification is due again after `retryAfter`. If
    /// the device has collected new messages meanwhile, the two become one.
    public func retryNotification(id: Int64, after retryAfter: Duration) async throws {
        try await database.withTransaction { tx in
            let merged = try await tx.query(
                """
                UPDATE push_outbox o SET messages = o.messages + f.messages, attempts = GREATEST(o.attempts, f.attempts + 1),
                       due_at = GREATEST(o.due_at, now() + \(retryAfter.milliseconds) * interval '1 millisecond')
                FROM push_outbox f
                WHERE f.id = \(id) AND o.user_id = f.user_id AND o.device_id = f.device_id AND NOT o.sending AND o.id <> f.id
                RETURNING o.id
                """,
                logger: logger
            ).collect()
            if merged.isEmpty {
                try await tx.query(
                    """
                    UPDATE push_outbox SET sending = false, attempts = attempts + 1, due_at = now() + \(retryAfter.milliseconds) * interval '1 millisecond'
                    WHERE id = \(id)
                    """,
                    logger: logger
                )
            } else {
                try await tx.query("DELETE FROM push_outbox WHERE id = \(id)", logger: logger)
            }
        }
    }
}
