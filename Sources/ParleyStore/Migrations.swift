import Logging
import PostgresNIO

/// Versioned schema migrations, applied in order at start-up.
///
/// Each migration runs in its own transaction together with its row in
/// `schema_migrations`, under an advisory lock, so two processes starting at
/// once (two logic instances) never apply one twice.
public enum Migrations {
    public static let all: [(version: Int, sql: [String])] = [
        (1, [
            """
            CREATE TABLE origins (
                origin text PRIMARY KEY,
                applied_seq bigint NOT NULL,   -- highest contiguous seq stored
                last_hlc bigint NOT NULL
            )
            """,
            """
            CREATE TABLE events (
                origin text NOT NULL,
                seq bigint NOT NULL,
                hlc bigint NOT NULL,
                kind smallint NOT NULL,
                payload bytea NOT NULL,        -- the encoded Parley_Event
                PRIMARY KEY (origin, seq)
            )
            """,
            """
            CREATE TABLE user_counters (
                user_id text NOT NULL,
                origin text NOT NULL,
                user_seq bigint NOT NULL,
                PRIMARY KEY (user_id, origin)
            )
            """,
            """
            CREATE TABLE inbox (
                user_id text NOT NULL,
                origin text NOT NULL,
                user_seq bigint NOT NULL,
                event_seq bigint NOT NULL,
                PRIMARY KEY (user_id, origin, user_seq)
            )
            """,
            "CREATE TABLE users (user_id text PRIMARY KEY, origin text NOT NULL, seq bigint NOT NULL)",
            """
            CREATE TABLE conversations (
                conversation_id text PRIMARY KEY,
                is_group boolean NOT NULL,
                name text NOT NULL,
                owner text NOT NULL
            )
            """,
            """
            CREATE TABLE members (
                conversation_id text NOT NULL,
                user_id text NOT NULL,
                PRIMARY KEY (conversation_id, user_id)
            )
            """,
            "CREATE INDEX members_by_user ON members (user_id)",
            """
            CREATE TABLE messages (
                origin text NOT NULL,
                seq bigint NOT NULL,
                conversation_id text NOT NULL,
                hlc bigint NOT NULL,
                sender text NOT NULL,
                body text NOT NULL,
                PRIMARY KEY (origin, seq)
            )
            """,
            "CREATE INDEX messages_in_order ON messages (conversation_id, hlc, origin, seq)",
            """
            CREATE TABLE client_messages (
                sender text NOT NULL,
                client_msg_id text NOT NULL,
                origin text NOT NULL,
                seq bigint NOT NULL,
                PRIMARY KEY (sender, client_msg_id)
            )
            """,
            """
            CREATE TABLE read_markers (
                conversation_id text NOT NULL,
                user_id text NOT NULL,
                hlc bigint NOT NULL,
                origin text NOT NULL,
                seq bigint NOT NULL,
                PRIMARY KEY (conversation_id, user_id)
            )
            """,
        ]),
        // Edits, recalls, membership changes and profiles (last writer wins by
        // (hlc, origin)), and duplicate client ids decided by the lowest
        // (hlc, origin): docs/REPLICATION.md.
        (2, [
            """
            ALTER TABLE messages
              ADD COLUMN client_msg_id text NOT NULL DEFAULT '',
              ADD COLUMN recalled boolean NOT NULL DEFAULT false,
              ADD COLUMN edit_hlc bigint NOT NULL DEFAULT 0,
              ADD COLUMN edit_origin text NOT NULL DEFAULT ''
            """,
            "UPDATE messages m SET client_msg_id = c.client_msg_id FROM client_messages c WHERE c.origin = m.origin AND c.seq = m.seq",
            // The winner of each (sender, client_msg_id): the lowest (hlc, origin).
            "ALTER TABLE client_messages ADD COLUMN hlc bigint NOT NULL DEFAULT 0",
            "UPDATE client_messages c SET hlc = m.hlc FROM messages m WHERE c.origin = m.origin AND c.seq = m.seq",
            // Group membership is a register per (group, member); removed members keep their row.
            """
            ALTER TABLE members
              ADD COLUMN present boolean NOT NULL DEFAULT true,
              ADD COLUMN hlc bigint NOT NULL DEFAULT 0,
              ADD COLUMN origin text NOT NULL DEFAULT ''
            """,
            """
            CREATE TABLE profiles (
                user_id text NOT NULL,
                field text NOT NULL,
                value text NOT NULL,
                hlc bigint NOT NULL,
                origin text NOT NULL,
                PRIMARY KEY (user_id, field)
            )
            """,
        ]),
        (3, Digests.migration),
        // The copies of one (sender, client_msg_id), for the winner's `replaces`.
        (4, ["CREATE INDEX messages_by_client_id ON messages (sender, client_msg_id)"]),
        // A group id created concurrently by two regions keeps the earliest
        // creation, and a recall leaves no edit stamp behind
        // (ParleyCore's ConvergentBatch): before, both depended on arrival order.
        (5, [
            "ALTER TABLE conversations ADD COLUMN hlc bigint NOT NULL DEFAULT 0, ADD COLUMN origin text NOT NULL DEFAULT ''",
            """
            UPDATE conversations c SET hlc = e.hlc, origin = e.origin
            FROM (SELECT DISTINCT ON (conversation_id) conversation_id, hlc, origin FROM events
                  WHERE kind = 4 ORDER BY conversation_id, hlc, origin) e
            WHERE c.conversation_id = e.conversation_id
            """,
            "UPDATE messages SET edit_hlc = 0, edit_origin = '' WHERE recalled AND (edit_hlc <> 0 OR edit_origin <> '')",
        ]),
        // Private settings (push tokens, mutes): registers like profiles,
        // never shown to other users (ParleyCore's UserSetting).
        (6, [
            """
            CREATE TABLE user_settings (
                user_id text NOT NULL,
                key text NOT NULL,
                value text NOT NULL,
                hlc bigint NOT NULL,
                origin text NOT NULL,
                PRIMARY KEY (user_id, key)
            )
            """,
        ]),
        // ext's own progress, kept here and not in Redis (docs/ARCHITECTURE.md,
        // "Follow-up work: ext"): per origin, every seq up to `done_seq` is
        // done; `ext_done` holds the done ones above it; `push_outbox` the
        // notifications waiting for the push gateway. A region upgraded with
        // history starts after it: nobody is notified of old messages.
        (7, [
            """
            CREATE TABLE ext_cursors (
                origin text PRIMARY KEY,
                done_seq bigint NOT NULL,
                seen_head bigint NOT NULL,
                seen_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "INSERT INTO ext_cursors (origin, done_seq, seen_head) SELECT origin, applied_seq, applied_seq FROM origins",
            "CREATE TABLE ext_done (origin text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (origin, seq))",
            """
            CREATE TABLE push_outbox (
                id bigserial PRIMARY KEY,
                user_id text NOT NULL,
                device_id text NOT NULL,
                token text NOT NULL,
                sending boolean NOT NULL DEFAULT false,
                messages integer NOT NULL,
                latest_seq bigint NOT NULL,
                latest_message text NOT NULL,
                latest_conversation text NOT NULL,
                latest_sender text NOT NULL,
                latest_preview text NOT NULL,
                due_at timestamptz NOT NULL,
                attempts integer NOT NULL DEFAULT 0
            )
            """,
            // One open notification per device collects a burst; one being sent does not take new messages.
            "CREATE UNIQUE INDEX push_outbox_open ON push_outbox (user_id, device_id) WHERE NOT sending",
            "CREATE INDEX push_outbox_due ON push_outbox (due_at)",
        ]),
        // Broadcasts of the platform API, region-local like ext's progress:
        // the notices they post are the replicated part (docs/ARCHITECTURE.md,
        // "Broadcasts"). `after_user`: every recipient up to it (by user_id) is done.
        (8, [
            """
            CREATE TABLE broadcasts (
                service text NOT NULL,
                broadcast_id text NOT NULL,
                scope text NOT NULL,
                body text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                after_user text NOT NULL DEFAULT '',
                reached bigint NOT NULL DEFAULT 0,
                failed bigint NOT NULL DEFAULT 0,
                done_at timestamptz,
                lease_owner text NOT NULL DEFAULT '',
                lease_until timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (service, broadcast_id)
            )
            """,
            "CREATE INDEX broadcasts_running ON broadcasts (created_at) WHERE done_at IS NULL",
            // A region's own users (first signed in there), in order, for broadcasts to the region.
            "CREATE INDEX users_by_origin ON users (origin, user_id)",
        ]),
        // Conversation registers, last writer wins by (hlc, origin): a group's
        // settings and its members' roles, a friendship and the blocks between
        // two users (ParleyCore's RegisterKey). Digested with their conversation.
        (9, [
            """
            CREATE TABLE registers (
                conversation_id text NOT NULL,
                subject text NOT NULL,
                name text NOT NULL,
                value text NOT NULL,
                hlc bigint NOT NULL,
                origin text NOT NULL,
                PRIMARY KEY (conversation_id, subject, name)
            )
            """,
            // A user's friendships and blocks, whichever side of `d:<a>:<b>` they are.
            "CREATE INDEX registers_by_first_user ON registers (split_part(conversation_id, ':', 2)) WHERE conversation_id LIKE 'd:%'",
            "CREATE INDEX registers_by_second_user ON registers (split_part(conversation_id, ':', 3)) WHERE conversation_id LIKE 'd:%'",
        ] + Digests.stateTriggers(for: Digests.registers)),
        // Messages deleted for one user (a union, digested with their
        // conversation), and each conversation's newest message for the
        // conversation list (a max, derived from messages).
        (10, [
            """
            CREATE TABLE hidden_messages (
                user_id text NOT NULL,
                origin text NOT NULL,
                seq bigint NOT NULL,
                conversation_id text NOT NULL,
                PRIMARY KEY (user_id, origin, seq)
            )
            """,
            """
            CREATE TABLE conversation_activity (
                conversation_id text PRIMARY KEY,
                hlc bigint NOT NULL,
                origin text NOT NULL,
                seq bigint NOT NULL
            )
            """,
            """
            INSERT INTO conversation_activity
            SELECT DISTINCT ON (conversation_id) conversation_id, hlc, origin, seq FROM messages
            ORDER BY conversation_id, hlc DESC, origin DESC, seq DESC
            """,
        ] + Digests.stateTriggers(for: Digests.hiddenMessages)),
        // A region whose own log went backwards takes no changes: the fence
        // (an OriginFence as JSON) on its own origin's row, read by every
        // commit under the row's lock (docs/REPLICATION.md, "The log never goes backwards").
        (11, [
            "ALTER TABLE origins ADD COLUMN fenced text",
        ]),
    ]

    /// Applies every migration not yet applied. Safe to call concurrently.
    static func run(on database: Database, logger: Logger) async throws {
        try await database.withConnection { connection in
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger
            )
            for migration in all {
                try await database.inTransaction(on: connection) { tx in
                    // One lock id for "parl": concurrent starters apply migrations one at a time.
                    try await tx.query("SELECT pg_advisory_xact_lock(1885434476)", logger: logger)
                    let done = try await tx.query(
                        "SELECT 1 FROM schema_migrations WHERE version = \(migration.version)", logger: logger
                    ).collect()
                    guard done.isEmpty else { return }
                    for statement in migration.sql {
                        try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await tx.query("INSERT INTO schema_migrations (version) VALUES (\(migration.version))", logger: logger)
                    logger.info("applied schema migration", metadata: ["version": "\(migration.version)"])
                }
            }
        }
    }
}
