import ParleyCore

/// Digests that let `parley check` prove regions agree without rescanning
/// them (docs/OPERATIONS.md, "Checking that regions agree"), kept by PostgreSQL itself.
///
/// Every row that matters hashes to 64 bits (the first half of an md5), and
/// a digest is the XOR of its rows' hashes: adding, removing or changing a
/// row changes it by the row's old and new hash, whatever the order. Statement
/// triggers with transition tables keep the digests in the same transaction
/// as the rows, one aggregate per statement (not a trigger call per row). A
/// row changed behind the system's back (by hand, by a bug) changes its
/// digest too: that is what makes the checker's proof worth something.
///
/// - `log_buckets`: per origin and bucket of 1,024 seqs (`seq >> 10`), the
///   digest and count of the events stored. The log at a version vector is
///   the full buckets below it plus at most one partial bucket read from rows.
/// - `conversation_digests`: per conversation, the digest and count of its
///   events (`log_digest`, `log_events`: which events a region applied to it)
///   and of its derived state (`state_digest`: messages as stored with their
///   visible content and tombstones, read markers, membership, the
///   conversation row). Two regions whose conversation logs agree must agree
///   on its state.
enum Digests {
    /// The bucket width of `log_buckets`, as a shift: the checker's.
    static let bucketShift = LogBucket.shift

    /// Derived tables digested per conversation, with the hash of a row.
    static var derivedTables: [(table: String, rowHash: String)] { firstTables + [registers, hiddenMessages] }

    /// Conversation registers (migration 9): group settings, roles, friendships, blocks.
    static let registers = (table: "registers", rowHash: "parley_h64(concat_ws('|', 'register', r.subject, r.name, r.value, r.hlc, r.origin))")

    /// Messages deleted for one user (migration 10).
    static let hiddenMessages = (table: "hidden_messages", rowHash: "parley_h64(concat_ws('|', 'hidden', r.user_id, r.origin, r.seq))")

    /// The tables digested from the start (migration 3).
    private static let firstTables: [(table: String, rowHash: String)] = [
        ("messages", "parley_h64(concat_ws('|', 'msg', r.origin, r.seq, r.hlc, r.sender, r.body, r.client_msg_id, r.recalled, r.edit_hlc, r.edit_origin))"),
        ("read_markers", "parley_h64(concat_ws('|', 'read', r.user_id, r.hlc, r.origin, r.seq))"),
        ("members", "parley_h64(concat_ws('|', 'member', r.user_id, r.present, r.hlc, r.origin))"),
        ("conversations", "parley_h64(concat_ws('|', 'conversation', r.is_group, r.name, r.owner))"),
    ]

    /// The hash of one event row (alias `r`), as the triggers and the checker compute it.
    static let eventHash = "parley_h64(concat_ws('|', r.origin, r.seq, r.hlc, r.kind, md5(r.payload)))"

    static var migration: [String] {
        var sql = [
            """
            CREATE FUNCTION parley_h64(t text) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
              AS $$ SELECT ('x' || substr(md5(t), 1, 16))::bit(64)::bigint $$
            """,
            // Which conversation an event belongs to ('' for none: registrations, profiles).
            "ALTER TABLE events ADD COLUMN conversation_id text NOT NULL DEFAULT ''",
            // Only message events can be traced back from derived rows; older
            // events of other kinds stay outside their conversation's log digest.
            "UPDATE events e SET conversation_id = m.conversation_id FROM messages m WHERE e.origin = m.origin AND e.seq = m.seq",
            """
            CREATE TABLE log_buckets (
                origin text NOT NULL,
                bucket bigint NOT NULL,
                digest bigint NOT NULL,
                events bigint NOT NULL,
                PRIMARY KEY (origin, bucket)
            )
            """,
            """
            CREATE TABLE conversation_digests (
                conversation_id text PRIMARY KEY,
                log_digest bigint NOT NULL DEFAULT 0,
                log_events bigint NOT NULL DEFAULT 0,
                state_digest bigint NOT NULL DEFAULT 0
            )
            """,
            """
            INSERT INTO log_buckets
            SELECT r.origin, r.seq >> \(bucketShift), bit_xor(\(eventHash)), count(*) FROM events r GROUP BY 1, 2
            """,
            """
            INSERT INTO conversation_digests (conversation_id, log_digest, log_events)
            SELECT r.conversation_id, bit_xor(\(eventHash)), count(*) FROM events r WHERE r.conversation_id <> '' GROUP BY 1
            """,
        ]
        for (table, rowHash) in firstTables {
            sql.append("""
                INSERT INTO conversation_digests AS d (conversation_id, state_digest)
                SELECT r.conversation_id, bit_xor(\(rowHash)) FROM \(table) r GROUP BY 1
                ON CONFLICT (conversation_id) DO UPDATE SET state_digest = d.state_digest # excluded.state_digest
                """)
        }
        sql += trigger(on: "events", body: { rows, sign in
            """
            INSERT INTO log_buckets AS d (origin, bucket, digest, events)
            SELECT r.origin, r.seq >> \(bucketShift), bit_xor(\(eventHash)), \(sign) count(*) FROM \(rows) r GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (origin, bucket) DO UPDATE SET digest = d.digest # excluded.digest, events = d.events + excluded.events;
            INSERT INTO conversation_digests AS d (conversation_id, log_digest, log_events)
            SELECT r.conversation_id, bit_xor(\(eventHash)), \(sign) count(*) FROM \(rows) r WHERE r.conversation_id <> '' GROUP BY 1 ORDER BY 1
            ON CONFLICT (conversation_id) DO UPDATE SET log_digest = d.log_digest # excluded.log_digest, log_events = d.log_events + excluded.log_events;
            """
        })
        for table in firstTables { sql += stateTriggers(for: table) }
        return sql
    }

    /// The triggers that fold a derived table's rows into its conversations' state digests.
    static func stateTriggers(for derived: (table: String, rowHash: String)) -> [String] {
        trigger(on: derived.table, body: { rows, _ in
            """
            INSERT INTO conversation_digests AS d (conversation_id, state_digest)
            SELECT r.conversation_id, bit_xor(\(derived.rowHash)) FROM \(rows) r GROUP BY 1 ORDER BY 1
            ON CONFLICT (conversation_id) DO UPDATE SET state_digest = d.state_digest # excluded.state_digest;
            """
        })
    }

    /// One function and three statement triggers keeping digests of `table`:
    /// `body(rows, sign)` folds a transition table in (`+` for new rows, `-`
    /// for old ones; XOR needs no sign). Digest rows are upserted in key
    /// order, so concurrent writers lock them in the same order.
    private static func trigger(on table: String, body: (String, String) -> String) -> [String] {
        let function = "parley_digest_\(table)()"
        return [
            """
            CREATE FUNCTION \(function) RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP IN ('UPDATE', 'DELETE') THEN
                \(body("old_rows", "-"))
              END IF;
              IF TG_OP IN ('UPDATE', 'INSERT') THEN
                \(body("new_rows", "+"))
              END IF;
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER \(table)_digest_insert AFTER INSERT ON \(table)
              REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION \(function)
            """,
            """
            CREATE TRIGGER \(table)_digest_update AFTER UPDATE ON \(table)
              REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION \(function)
            """,
            """
            CREATE TRIGGER \(table)_digest_delete AFTER DELETE ON \(table)
              REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION \(function)
            """,
        ]
    }
}
