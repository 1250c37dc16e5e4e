import Logging
import PostgresNIO

/// A broadcast of the platform API as this region runs it.
public struct BroadcastRecord: Sendable, Equatable {
    public enum Scope: String, Sendable {
        /// The users whose first sign-in was in this region.
        case region
        /// Every user any region knows.
        case all
    }

    public var service: String
    public var broadcastID: String
    public var scope: Scope
    public var body: String
    /// Every recipient up to this user id is done ("": none yet).
    public var afterUser: String
    /// Recipients the broadcast has reached: posted by this run or an earlier one.
    public var reached: Int64
    /// Recipients logic refused (their notice will never be stored).
    public var failed: Int64
    public var done: Bool
}

// Broadcasts run by ext in resumable batches (docs/ARCHITECTURE.md,
// "Broadcasts"): each batch's progress is stored after its notices are, and
// a notice posted again is a duplicate, so a run cut anywhere resumes and
// reaches nobody twice.
extension RegionStore {
    /// Records a new broadcast; false when the service already has one with
    /// this id (the first one's content stands).
    public func createBroadcast(service: String, broadcastID: String, scope: BroadcastRecord.Scope, body: String) async throws -> Bool {
        let rows = try await database.query(
            """
            INSERT INTO broadcasts (service, broadcast_id, scope, body) VALUES (\(service), \(broadcastID), \(scope.rawValue), \(body))
            ON CONFLICT DO NOTHING RETURNING 1
            """,
            logger: logger
        ).collect()
        return !rows.isEmpty
    }

    public func broadcast(service: String, broadcastID: String) async throws -> BroadcastRecord? {
        let rows = try await database.query(
            """
            SELECT service, broadcast_id, scope, body, after_user, reached, failed, done_at IS NOT NULL FROM broadcasts
            WHERE service = \(service) AND broadcast_id = \(broadcastID)
            """,
            logger: logger
        )
        return try await Self.records(rows).first
    }

    /// Takes the oldest unfinished broadcast that nobody holds (its lease
    /// ran out), or that `owner` held before it restarted, for `lease`.
    public func leaseBroadcast(owner: String, lease: Duration) async throws -> BroadcastRecord? {
        let rows = try await database.query(
            """
            UPDATE broadcasts b SET lease_owner = \(owner), lease_until = now() + \(lease.milliseconds) * interval '1 millisecond'
            FROM (SELECT service, broadcast_id FROM broadcasts
                  WHERE done_at IS NULL AND (lease_until <= now() OR lease_owner = \(owner))
                  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) t
            WHERE b.service = t.service AND b.broadcast_id = t.broadcast_id
            RETURNING b.service, b.broadcast_id, b.scope, b.body, b.after_user, b.reached, b.failed, b.done_at IS NOT NULL
            """,
            logger: logger
        )
        return try await Self.records(rows).first
    }

    /// The next `limit` recipients after `afterUser`, in user id order.
    public func broadcastRecipients(scope: BroadcastRecord.Scope, region: String, after afterUser: String, limit: Int) async throws -> [String] {
        let rows = switch scope {
        case .all:
            try await database.query(
                "SELECT user_id FROM users WHERE user_id > \(afterUser) ORDER BY user_id LIMIT \(limit)", logger: logger
            )
        case .region:
            try await database.query(
                "SELECT user_id FROM users WHERE origin = \(region) AND user_id > \(afterUser) ORDER BY user_id LIMIT \(limit)",
                logger: logger
            )
        }
        var users: [String] = []
        for try await user in rows.decode(String.self) { users.append(user) }
        return users
    }

    /// Stores a batch's progress and renews the lease; `done` when no
    /// recipient is left. False when `owner` no longer holds the lease
    /// (another instance took the broadcast over): it must stop.
    public func advanceBroadcast(
        _ record: BroadcastRecord, owner: String, afterUser: String, reached: Int64, failed: Int64, done: Bool, lease: Duration
    ) async throws -> Bool {
        let rows = try await database.query(
            """
            UPDATE broadcasts SET after_user = \(afterUser), reached = reached + \(reached), failed = failed + \(failed),
                   done_at = CASE WHEN \(done) THEN now() END, lease_owner = CASE WHEN \(done) THEN '' ELSE lease_owner END,
                   lease_until = now() + \(lease.milliseconds) * interval '1 millisecond'
            WHERE service = \(record.service) AND broadcast_id = \(record.broadcastID) AND lease_owner = \(owner) AND done_at IS NULL
            RETURNING 1
            """,
            logger: logger
        ).collect()
        return !rows.isEmpty
    }

    private static func records(_ rows: CollectedRows) async throws -> [BroadcastRecord] {
        var records: [BroadcastRecord] = []
        for try await row in rows.decode((String, String, String, String, String, Int64, Int64, Bool).self) {
            records.append(BroadcastRecord(
                service: row.0, broadcastID: row.1, scope: .init(rawValue: row.2) ?? .region, body: row.3, afterUser: row.4,
                reached: row.5, failed: row.6, done: row.7
            ))
        }
        return records
    }
}
