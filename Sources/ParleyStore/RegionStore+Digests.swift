import ParleyCore
import ParleyProto
import PostgresNIO
import SwiftProtobuf

/// Reading the digests PostgreSQL keeps (`Digests`) for `parley check`:
/// the log restricted to a version vector, and the way down to one event or
/// one row. Each answer reads kept digests plus at most one bucket of rows.
extension RegionStore {
    /// Per origin of `vector`, the log from seq 1 through `vector[origin]`:
    /// the full buckets below it from `log_buckets`, the partial one from rows.
    public func logDigests(at vector: VersionVector) async throws -> [String: LogDigest] {
        let origins = vector.origins.sorted()
        let through = origins.map { Int64(vector[$0]) }
        let rows = try await database.query(
            """
            SELECT v.origin,
                   coalesce((SELECT bit_xor(b.digest) FROM log_buckets b WHERE b.origin = v.origin AND b.bucket < v.n >> \(unescaped: "\(Digests.bucketShift)")), 0)
                   # coalesce((SELECT bit_xor(\(unescaped: Digests.eventHash)) FROM events r
                               WHERE r.origin = v.origin AND r.seq >= (v.n >> \(unescaped: "\(Digests.bucketShift)")) << \(unescaped: "\(Digests.bucketShift)") AND r.seq <= v.n), 0),
                   coalesce((SELECT sum(b.events) FROM log_buckets b WHERE b.origin = v.origin AND b.bucket < v.n >> \(unescaped: "\(Digests.bucketShift)")), 0)::bigint
                   + (SELECT count(*) FROM events r
                      WHERE r.origin = v.origin AND r.seq >= (v.n >> \(unescaped: "\(Digests.bucketShift)")) << \(unescaped: "\(Digests.bucketShift)") AND r.seq <= v.n)
            FROM unnest(\(origins)::text[], \(through)::bigint[]) AS v(origin, n)
            """,
            logger: logger
        )
        var digests: [String: LogDigest] = [:]
        for try await (origin, digest, events) in rows.decode((String, Int64, Int64).self) {
            digests[origin] = LogDigest(digest: digest, events: events)
        }
        return digests
    }

    /// The buckets of one origin's log through `through`, the last one partial.
    public func logBuckets(origin: String, through: UInt64) async throws -> [DigestBucket] {
        let last = Int64(through) >> Int64(Digests.bucketShift)
        var buckets: [DigestBucket] = []
        let full = try await database.query(
            "SELECT bucket, digest, events FROM log_buckets WHERE origin = \(origin) AND bucket < \(last) AND events <> 0 ORDER BY bucket",
            logger: logger
        )
        for try await (bucket, digest, events) in full.decode((Int64, Int64, Int64).self) {
            buckets.append(DigestBucket(bucket: bucket, digest: digest, events: events))
        }
        let partial = try await events(origin: origin, bucket: last, through: through)
        if !partial.isEmpty {
            buckets.append(DigestBucket(bucket: last, digest: partial.reduce(0) { $0 ^ $1.hash }, events: Int64(partial.count)))
        }
        return buckets
    }

    /// The events of one bucket through `through`, with their hashes and a readable rendering.
    public func events(origin: String, bucket: Int64, through: UInt64) async throws -> [EventSummary] {
        let shift = Int64(Digests.bucketShift)
        let rows = try await database.query(
            """
            SELECT r.seq, \(unescaped: Digests.eventHash), r.hlc, r.kind, r.conversation_id, r.payload FROM events r
            WHERE r.origin = \(origin) AND r.seq >= \(bucket << shift) AND r.seq < \((bucket + 1) << shift) AND r.seq <= \(Int64(through))
            ORDER BY r.seq
            """,
            logger: logger
        )
        var events: [EventSummary] = []
        for try await (seq, hash, hlc, kind, conversation, payload) in rows.decode((Int64, Int64, Int64, Int16, String, ByteBuffer).self) {
            events.append(EventSummary(
                origin: origin, seq: seq, hash: hash, hlc: hlc, kind: kind, conversation: conversation, text: Self.render(payload)
            ))
        }
        return events
    }

    /// Per origin, the applied seq and the number of events stored.
    public func logIntegrity() async throws -> [String: LogIntegrity] {
        let rows = try await database.query(
            """
            SELECT o.origin, o.applied_seq, coalesce((SELECT sum(b.events) FROM log_buckets b WHERE b.origin = o.origin), 0)::bigint
            FROM (SELECT origin, applied_seq FROM origins UNION SELECT DISTINCT origin, 0 FROM log_buckets
                  WHERE origin NOT IN (SELECT origin FROM origins)) o
            """,
            logger: logger
        )
        var integrity: [String: LogIntegrity] = [:]
        for try await (origin, applied, stored) in rows.decode((String, Int64, Int64).self) {
            integrity[origin] = LogIntegrity(applied: applied, stored: stored)
        }
        return integrity
    }

    /// The conversations in 256 buckets by the hash of their id: per bucket,
    /// the XOR of each conversation's digests and how many it holds. Two
    /// regions compare these first and list only the buckets that differ.
    public func conversationBuckets() async throws -> [DigestBucket] {
        let rows = try await database.query(
            """
            SELECT parley_h64(conversation_id) & 255, bit_xor(parley_h64(concat_ws('|', conversation_id, log_digest, log_events, state_digest))), count(*)
            FROM conversation_digests WHERE log_events <> 0 OR state_digest <> 0 GROUP BY 1 ORDER BY 1
            """,
            logger: logger
        )
        var buckets: [DigestBucket] = []
        for try await (bucket, digest, count) in rows.decode((Int64, Int64, Int64).self) {
            buckets.append(DigestBucket(bucket: bucket, digest: digest, events: count))
        }
        return buckets
    }

    /// The digests of the conversations in one bucket of `conversationBuckets`.
    public func conversationDigests(bucket: Int64) async throws -> [ConversationDigest] {
        let rows = try await database.query(
            """
            SELECT conversation_id, log_digest, log_events, state_digest FROM conversation_digests
            WHERE (log_events <> 0 OR state_digest <> 0) AND parley_h64(conversation_id) & 255 = \(bucket) ORDER BY conversation_id
            """,
            logger: logger
        )
        var digests: [ConversationDigest] = []
        for try await (conversation, log, events, state) in rows.decode((String, Int64, Int64, Int64).self) {
            digests.append(ConversationDigest(conversation: conversation, logDigest: log, logEvents: events, stateDigest: state))
        }
        return digests
    }

    /// Every row of one conversation's derived state, hashed as its digest is.
    public func stateRows(conversation: String) async throws -> [StateRow] {
        let keys = [
            "messages": "concat_ws('-', r.origin, r.seq)", "read_markers": "r.user_id", "members": "r.user_id", "conversations": "r.conversation_id",
            "registers": "concat_ws('/', r.subject, r.name)", "hidden_messages": "concat_ws('/', r.user_id, r.origin, r.seq)",
        ]
        let selects = Digests.derivedTables.map { table, rowHash in
            "SELECT '\(table)', \(keys[table] ?? "''"), \(rowHash), row_to_json(r)::text FROM \(table) r WHERE r.conversation_id = $1"
        }
        var query = PostgresQuery(unsafeSQL: selects.joined(separator: " UNION ALL ") + " ORDER BY 1, 2")
        query.binds.append(conversation)
        let rows = try await database.query(query, logger: logger)
        var result: [StateRow] = []
        for try await (table, key, hash, content) in rows.decode((String, String, Int64, String).self) {
            result.append(StateRow(table: table, key: key, hash: hash, content: content))
        }
        return result
    }

    /// The event as JSON text, for a human comparing two regions' versions.
    private static func render(_ payload: ByteBuffer) -> String {
        guard let event = try? Parley_Event(buffer: payload) else { return "(undecodable payload: \(payload.readableBytes) bytes)" }
        return (try? event.jsonString()) ?? "\(event)"
    }
}
