import PostgresNIO

// The write path's statements, prepared once per connection: planning a
// multi-part statement costs Postgres milliseconds, more than running it, and
// every commit runs these under the origin lock.

/// Locks this origin's head row until commit and reads every origin's head.
struct LockOriginStatement: PostgresPreparedStatement {
    static let sql = """
        WITH mine AS (SELECT origin, applied_seq, last_hlc, fenced FROM origins WHERE origin = $1 FOR UPDATE)
        SELECT origin, applied_seq, last_hlc, fenced FROM mine
        UNION ALL SELECT origin, applied_seq, last_hlc, NULL FROM origins WHERE origin <> $1
        """
    typealias Row = (String, Int64, Int64, String?)

    var origin: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(origin)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Everything the planner checks, in one round trip; column k tags each part.
/// Conversations (with their owner, present members and own registers) are
/// those named by the commands and those of the messages they name. Parts 7
/// and 8 are what an optimistic commit starts from (`RegionStore.commit`):
/// this origin's counters of the named users and those members, and every
/// origin's head. Parts 9 and 10 are the registers of named (conversation,
/// subject) pairs and those members' membership stamps; a message's actor
/// names its conversation's pair with them.
struct SnapshotStatement: PostgresPreparedStatement {
    static let sql = """
        WITH named AS (SELECT * FROM unnest($5::text[], $6::bigint[]) AS n(origin, seq)),
          wanted AS (SELECT unnest($2::text[]) AS conversation_id
                     UNION SELECT m.conversation_id FROM messages m JOIN named USING (origin, seq)),
          present AS (SELECT conversation_id, user_id FROM members
                      WHERE present AND conversation_id IN (SELECT conversation_id FROM wanted)),
          subjects AS (SELECT * FROM unnest($10::text[], $11::text[]) AS s(conversation_id, subject)
                       UNION SELECT conversation_id, '' FROM wanted
                       UNION SELECT m.conversation_id, a.actor FROM messages m
                         JOIN unnest($12::text[], $13::bigint[], $14::text[]) AS a(origin, seq, actor) USING (origin, seq))
        SELECT 1 AS k, user_id AS a, '' AS b, '' AS c, NULL::bytea AS p, 0::bigint AS n, 0::bigint AS h, false AS r, '' AS v, '' AS o
          FROM users WHERE user_id = ANY($1::text[])
        UNION ALL SELECT 2, conversation_id, owner, name, NULL, 0, 0, false, '', ''
          FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM wanted)
        UNION ALL SELECT 3, conversation_id, user_id, '', NULL, 0, 0, false, '', '' FROM present
        UNION ALL SELECT 4, c.sender, c.client_msg_id, '', e.payload, 0, 0, false, '', ''
          FROM client_messages c JOIN events e ON e.origin = c.origin AND e.seq = c.seq
          WHERE (c.sender, c.client_msg_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
        UNION ALL SELECT 5, m.origin, m.conversation_id, m.sender, NULL, m.seq, m.hlc, m.recalled, '', ''
          FROM messages m JOIN named USING (origin, seq)
        UNION ALL SELECT 6, conversation_id, user_id, origin, NULL, seq, hlc, false, '', ''
          FROM read_markers WHERE (conversation_id, user_id) IN (SELECT * FROM unnest($7::text[], $8::text[]))
        UNION ALL SELECT 7, user_id, '', '', NULL, user_seq, 0, false, '', ''
          FROM user_counters WHERE origin = $9 AND user_id IN (SELECT unnest($1::text[]) UNION SELECT user_id FROM present)
        UNION ALL SELECT 8, origin, '', '', NULL, applied_seq, last_hlc, false, '', '' FROM origins
        UNION ALL SELECT 9, g.conversation_id, g.subject, g.name, NULL, 0, g.hlc, false, g.value, g.origin
          FROM registers g JOIN subjects USING (conversation_id, subject)
        UNION ALL SELECT 10, mb.conversation_id, mb.user_id, '', NULL, 0, mb.hlc, mb.present, '', mb.origin
          FROM members mb JOIN subjects s ON s.conversation_id = mb.conversation_id AND s.subject = mb.user_id
        """
    typealias Row = (Int32, String, String, String, ByteBuffer?, Int64, Int64, Bool, String, String)

    var users: [String]
    var conversations: [String]
    var postSenders: [String]
    var postClientIDs: [String]
    var messageOrigins: [String]
    var messageSeqs: [Int64]
    var readerConversations: [String]
    var readerUsers: [String]
    var origin: String
    var subjectConversations: [String]
    var subjects: [String]
    var actorOrigins: [String]
    var actorSeqs: [Int64]
    var actors: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 14)
        bindings.append(users)
        bindings.append(conversations)
        bindings.append(postSenders)
        bindings.append(postClientIDs)
        bindings.append(messageOrigins)
        bindings.append(messageSeqs)
        bindings.append(readerConversations)
        bindings.append(readerUsers)
        bindings.append(origin)
        bindings.append(subjectConversations)
        bindings.append(subjects)
        bindings.append(actorOrigins)
        bindings.append(actorSeqs)
        bindings.append(actors)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Adds each user's new events to their counter for this origin, in user-id
/// order (a fixed lock order, so concurrent commits cannot deadlock).
struct IncrementCountersStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO user_counters (user_id, origin, user_seq)
        SELECT u, $1, n FROM unnest($2::text[], $3::bigint[]) AS t(u, n) ORDER BY u
        ON CONFLICT (user_id, origin) DO UPDATE SET user_seq = user_counters.user_seq + excluded.user_seq
        RETURNING user_id, user_seq
        """
    typealias Row = (String, Int64)

    var origin: String
    var users: [String]
    var increments: [Int64]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(origin)
        bindings.append(users)
        bindings.append(increments)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
