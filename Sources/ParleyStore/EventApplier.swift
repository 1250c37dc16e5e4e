import Logging
import ParleyCore
import ParleyProto
import PostgresNIO

/// Writes events and their derived state inside the caller's transaction, in
/// one set-based statement (data-modifying CTEs over `unnest` arrays): round
/// trips held under the origin lock are what limit a region's write rate.
///
/// Every part is idempotent (applying an event twice changes nothing), so the
/// same path serves local commits and replicated events from other regions.
enum EventApplier {
    /// An origin's log head after the events: its applied seq and last hlc.
    struct OriginHead {
        var origin: String
        var appliedSeq: UInt64
        var lastHLC: UInt64
    }

    /// - Parameters:
    ///   - knownOrders: conversation order of messages the caller already knows
    ///     (a read marker names a message that may be stored or in this batch).
    ///   - heads: origins whose head moves with these events.
    ///   - carryCounters: raise each audience user's counter for the event's
    ///     origin to the carried user_seq (replicated events; a local commit
    ///     has already incremented them).
    static func apply(
        _ events: [Parley_Event], knownOrders: [MessageID: ConversationOrder], heads: [OriginHead],
        carryCounters: Bool = false, _ tx: PostgresConnection, _ logger: Logger
    ) async throws {
        var rows = DerivedRows()
        if carryCounters { rows.addCounters(of: events) }
        var markerMessages: [ReaderKey: MessageID] = [:]
        var orders = knownOrders
        for event in events {
            rows.add(event)
            if case .messagePosted = event.kind {
                orders[MessageID(origin: event.origin, seq: event.seq)] =
                    ConversationOrder(hlc: HLC(rawValue: event.hlc), origin: event.origin, seq: event.seq)
            }
            if case .readMoved(let read) = event.kind, let messageID = MessageID(read.messageID) {
                markerMessages[ReaderKey(conversationID: read.conversationID, userID: read.reader)] = messageID
            }
        }
        let missing = markerMessages.values.filter { orders[$0] == nil }
        if !missing.isEmpty { orders.merge(try await loadOrders(missing, tx, logger)) { a, _ in a } }
        var markers: [ReaderKey: ConversationOrder] = [:]
        for (reader, messageID) in markerMessages {
            guard let order = orders[messageID] else { continue }
            if let current = markers[reader], current >= order { continue }
            markers[reader] = order
        }
        rows.addMarkers(markers)
        rows.addHeads(heads)
        _ = try await tx.execute(rows, logger: logger)
    }

    private static func loadOrders(_ ids: [MessageID], _ tx: PostgresConnection, _ logger: Logger) async throws -> [MessageID: ConversationOrder] {
        let rows = try await tx.query(
            """
            SELECT origin, seq, hlc FROM messages WHERE (origin, seq) IN (
              SELECT * FROM unnest(\(ids.map(\.origin))::text[], \(ids.map { Int64($0.seq) })::bigint[]))
            """,
            logger: logger
        )
        var orders: [MessageID: ConversationOrder] = [:]
        for try await (origin, seq, hlc) in rows.decode((String, Int64, Int64).self) {
            orders[MessageID(origin: origin, seq: UInt64(seq))] =
                ConversationOrder(hlc: HLC(rawValue: UInt64(hlc)), origin: origin, seq: UInt64(seq))
        }
        return orders
    }
}

/// The rows an event batch adds to each table, column by column, written by
/// one prepared statement.
private struct DerivedRows: PostgresPreparedStatement {
    // events
    var logOrigin: [String] = [], logSeq: [Int64] = [], logHLC: [Int64] = [], logKind: [Int16] = [], logPayload: [ByteBuffer] = []
    // inbox
    var inboxUser: [String] = [], inboxOrigin: [String] = [], inboxUserSeq: [Int64] = [], inboxEventSeq: [Int64] = []
    // users
    var userID: [String] = [], userOrigin: [String] = [], userSeq: [Int64] = []
    // conversations
    var convID: [String] = [], convIsGroup: [Bool] = [], convName: [String] = [], convOwner: [String] = []
    // members
    var memberConv: [String] = [], memberUser: [String] = []
    // messages
    var msgOrigin: [String] = [], msgSeq: [Int64] = [], msgConv: [String] = [], msgHLC: [Int64] = [],
        msgSender: [String] = [], msgBody: [String] = []
    // client_messages
    var clientSender: [String] = [], clientID: [String] = [], clientOrigin: [String] = [], clientSeq: [Int64] = []
    // read_markers
    var markConv: [String] = [], markUser: [String] = [], markHLC: [Int64] = [], markOrigin: [String] = [], markSeq: [Int64] = []
    // origins
    var headOrigin: [String] = [], headSeq: [Int64] = [], headHLC: [Int64] = []
    // user_counters (replicated events only)
    var counterUser: [String] = [], counterOrigin: [String] = [], counterSeq: [Int64] = []

    mutating func add(_ event: Parley_Event) {
        logOrigin.append(event.origin); logSeq.append(Int64(event.seq)); logHLC.append(Int64(event.hlc))
        logKind.append(event.kindNumber); logPayload.append(event.encodedBuffer)
        for entry in event.audience {
            inboxUser.append(entry.userID); inboxOrigin.append(event.origin)
            inboxUserSeq.append(Int64(entry.userSeq)); inboxEventSeq.append(Int64(event.seq))
        }
        switch event.kind {
        case .userRegistered(let registered):
            userID.append(registered.userID); userOrigin.append(event.origin); userSeq.append(Int64(event.seq))
        case .messagePosted(let posted):
            msgOrigin.append(event.origin); msgSeq.append(Int64(event.seq)); msgConv.append(posted.conversationID)
            msgHLC.append(Int64(event.hlc)); msgSender.append(posted.sender); msgBody.append(posted.body)
            clientSender.append(posted.sender); clientID.append(posted.clientMsgID)
            clientOrigin.append(event.origin); clientSeq.append(Int64(event.seq))
            if let (a, b) = ConversationID.directUsers(of: posted.conversationID) {
                addConversation(posted.conversationID, isGroup: false, name: "", owner: "", members: [a, b])
            }
        case .groupCreated(let group):
            addConversation(ConversationID.group(group.groupID), isGroup: true, name: group.name, owner: group.owner, members: group.members)
        case .readMoved, nil:
            break
        }
    }

    private mutating func addConversation(_ id: String, isGroup: Bool, name: String, owner: String, members: [String]) {
        convID.append(id); convIsGroup.append(isGroup); convName.append(name); convOwner.append(owner)
        for member in members { memberConv.append(id); memberUser.append(member) }
    }

    mutating func addMarkers(_ markers: [ReaderKey: ConversationOrder]) {
        for (reader, order) in markers {
            markConv.append(reader.conversationID); markUser.append(reader.userID)
            markHLC.append(Int64(order.hlc.rawValue)); markOrigin.append(order.origin); markSeq.append(Int64(order.seq))
        }
    }

    /// One row per (user, origin): the highest user_seq the events carry
    /// (an upsert may not touch a row twice in one statement).
    mutating func addCounters(of events: [Parley_Event]) {
        var highest: [String: [String: UInt64]] = [:]
        for event in events {
            for entry in event.audience where entry.userSeq > highest[entry.userID]?[event.origin] ?? 0 {
                highest[entry.userID, default: [:]][event.origin] = entry.userSeq
            }
        }
        for (user, origins) in highest {
            for (origin, seq) in origins {
                counterUser.append(user); counterOrigin.append(origin); counterSeq.append(Int64(seq))
            }
        }
    }

    mutating func addHeads(_ heads: [EventApplier.OriginHead]) {
        for head in heads {
            headOrigin.append(head.origin); headSeq.append(Int64(head.appliedSeq)); headHLC.append(Int64(head.lastHLC))
        }
    }

    typealias Row = ()

    func decodeRow(_ row: PostgresRow) throws {}

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 39)
        b.append(logOrigin); b.append(logSeq); b.append(logHLC); b.append(logKind); b.append(logPayload)
        b.append(inboxUser); b.append(inboxOrigin); b.append(inboxUserSeq); b.append(inboxEventSeq)
        b.append(userID); b.append(userOrigin); b.append(userSeq)
        b.append(convID); b.append(convIsGroup); b.append(convName); b.append(convOwner)
        b.append(memberConv); b.append(memberUser)
        b.append(msgOrigin); b.append(msgSeq); b.append(msgConv); b.append(msgHLC); b.append(msgSender); b.append(msgBody)
        b.append(clientSender); b.append(clientID); b.append(clientOrigin); b.append(clientSeq)
        b.append(markConv); b.append(markUser); b.append(markHLC); b.append(markOrigin); b.append(markSeq)
        b.append(headOrigin); b.append(headSeq); b.append(headHLC)
        b.append(counterUser); b.append(counterOrigin); b.append(counterSeq)
        return b
    }

    /// Each table's insert is a CTE; empty arrays insert nothing. Read markers
    /// only move forward; an origin's head only moves forward.
    static let sql = """
        WITH
          ev AS (INSERT INTO events (origin, seq, hlc, kind, payload)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int2[], $5::bytea[])
                 ON CONFLICT DO NOTHING),
          ib AS (INSERT INTO inbox (user_id, origin, user_seq, event_seq)
                 SELECT * FROM unnest($6::text[], $7::text[], $8::bigint[], $9::bigint[])
                 ON CONFLICT DO NOTHING),
          us AS (INSERT INTO users (user_id, origin, seq)
                 SELECT * FROM unnest($10::text[], $11::text[], $12::bigint[])
                 ON CONFLICT DO NOTHING),
          cv AS (INSERT INTO conversations (conversation_id, is_group, name, owner)
                 SELECT * FROM unnest($13::text[], $14::bool[], $15::text[], $16::text[])
                 ON CONFLICT DO NOTHING),
          mb AS (INSERT INTO members (conversation_id, user_id)
                 SELECT * FROM unnest($17::text[], $18::text[])
                 ON CONFLICT DO NOTHING),
          ms AS (INSERT INTO messages (origin, seq, conversation_id, hlc, sender, body)
                 SELECT * FROM unnest($19::text[], $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::text[])
                 ON CONFLICT DO NOTHING),
          cm AS (INSERT INTO client_messages (sender, client_msg_id, origin, seq)
                 SELECT * FROM unnest($25::text[], $26::text[], $27::text[], $28::bigint[])
                 ON CONFLICT DO NOTHING),
          rm AS (INSERT INTO read_markers (conversation_id, user_id, hlc, origin, seq)
                 SELECT * FROM unnest($29::text[], $30::text[], $31::bigint[], $32::text[], $33::bigint[])
                 ON CONFLICT (conversation_id, user_id) DO UPDATE
                   SET hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq
                   WHERE (read_markers.hlc, read_markers.origin, read_markers.seq) < (excluded.hlc, excluded.origin, excluded.seq)),
          hd AS (UPDATE origins o SET applied_seq = h.seq, last_hlc = GREATEST(o.last_hlc, h.hlc)
                 FROM unnest($34::text[], $35::bigint[], $36::bigint[]) AS h(origin, seq, hlc)
                 WHERE o.origin = h.origin AND o.applied_seq < h.seq),
          uc AS (INSERT INTO user_counters (user_id, origin, user_seq)
                 SELECT * FROM unnest($37::text[], $38::text[], $39::bigint[])
                 ON CONFLICT (user_id, origin) DO UPDATE SET user_seq = GREATEST(user_counters.user_seq, excluded.user_seq))
        SELECT 1
        """
}

extension Parley_Event {
    /// The `kind` column: which body the event carries.
    var kindNumber: Int16 {
        switch kind {
        case .userRegistered: 1
        case .messagePosted: 2
        case .readMoved: 3
        case .groupCreated: 4
        case nil: 0
        }
    }
}
