import Logging
import ParleyCore
import ParleyProto
import PostgresNIO

/// Writes events and their derived state, set-based, inside the caller's
/// transaction. Every statement is idempotent (applying an event twice changes
/// nothing), so the same path serves local commits and, later, replicated
/// events from other regions.
enum EventApplier {
    static func apply(_ events: [Parley_Event], _ tx: PostgresConnection, _ logger: Logger) async throws {
        var log = Columns()
        var inbox = Columns()
        var users = Columns()
        var conversations = Columns()
        var members = Columns()
        var messages = Columns()
        var clientMessages = Columns()
        var markers: [ReaderKey: ConversationOrder] = [:]
        var messageOrders: [MessageID: ConversationOrder] = [:]
        var markerMessages: [ReaderKey: MessageID] = [:]

        for event in events {
            log.text(event.origin); log.int(event.seq); log.int(event.hlc)
            log.small(event.kindNumber); log.bytes(event.encodedBuffer)
            for entry in event.audience {
                inbox.text(entry.userID); inbox.text(event.origin); inbox.int(entry.userSeq); inbox.int(event.seq)
            }
            switch event.kind {
            case .userRegistered(let registered):
                users.text(registered.userID); users.text(event.origin); users.int(event.seq)
            case .messagePosted(let posted):
                messages.text(event.origin); messages.int(event.seq); messages.text(posted.conversationID)
                messages.int(event.hlc); messages.text(posted.sender); messages.text(posted.body)
                clientMessages.text(posted.sender); clientMessages.text(posted.clientMsgID)
                clientMessages.text(event.origin); clientMessages.int(event.seq)
                messageOrders[MessageID(origin: event.origin, seq: event.seq)] =
                    ConversationOrder(hlc: HLC(rawValue: event.hlc), origin: event.origin, seq: event.seq)
                if let (a, b) = ConversationID.directUsers(of: posted.conversationID) {
                    conversations.text(posted.conversationID); conversations.bool(false)
                    conversations.text(""); conversations.text("")
                    for user in [a, b] { members.text(posted.conversationID); members.text(user) }
                }
            case .groupCreated(let group):
                let id = ConversationID.group(group.groupID)
                conversations.text(id); conversations.bool(true); conversations.text(group.name); conversations.text(group.owner)
                for user in group.members { members.text(id); members.text(user) }
            case .readMoved(let read):
                if let messageID = MessageID(read.messageID) {
                    markerMessages[ReaderKey(conversationID: read.conversationID, userID: read.reader)] = messageID
                }
            case nil:
                break
            }
        }

        try await insert(log, "events (origin, seq, hlc, kind, payload)", ["text", "bigint", "bigint", "int2", "bytea"], tx, logger)
        try await insert(inbox, "inbox (user_id, origin, user_seq, event_seq)", ["text", "text", "bigint", "bigint"], tx, logger)
        try await insert(users, "users (user_id, origin, seq)", ["text", "text", "bigint"], tx, logger)
        try await insert(conversations, "conversations (conversation_id, is_group, name, owner)", ["text", "bool", "text", "text"], tx, logger)
        try await insert(members, "members (conversation_id, user_id)", ["text", "text"], tx, logger)
        try await insert(messages, "messages (origin, seq, conversation_id, hlc, sender, body)",
                         ["text", "bigint", "text", "bigint", "text", "text"], tx, logger)
        try await insert(clientMessages, "client_messages (sender, client_msg_id, origin, seq)", ["text", "text", "text", "bigint"], tx, logger)

        // A read marker needs its message's order; the message may be in this
        // batch or already stored.
        let missing = markerMessages.values.filter { messageOrders[$0] == nil }
        if !missing.isEmpty {
            let rows = try await tx.query(
                """
                SELECT origin, seq, hlc FROM messages WHERE (origin, seq) IN (
                  SELECT * FROM unnest(\(missing.map(\.origin))::text[], \(missing.map { Int64($0.seq) })::bigint[]))
                """,
                logger: logger
            )
            for try await (origin, seq, hlc) in rows.decode((String, Int64, Int64).self) {
                messageOrders[MessageID(origin: origin, seq: UInt64(seq))] =
                    ConversationOrder(hlc: HLC(rawValue: UInt64(hlc)), origin: origin, seq: UInt64(seq))
            }
        }
        for (reader, messageID) in markerMessages {
            guard let order = messageOrders[messageID] else { continue }
            if let current = markers[reader], current >= order { continue }
            markers[reader] = order
        }
        try await upsertMarkers(markers, tx, logger)
    }

    /// Read markers only move forward: the stored one is replaced only by a later one.
    private static func upsertMarkers(_ markers: [ReaderKey: ConversationOrder], _ tx: PostgresConnection, _ logger: Logger) async throws {
        guard !markers.isEmpty else { return }
        let entries = Array(markers)
        try await tx.query(
            """
            INSERT INTO read_markers (conversation_id, user_id, hlc, origin, seq)
            SELECT * FROM unnest(\(entries.map(\.key.conversationID))::text[], \(entries.map(\.key.userID))::text[],
                                 \(entries.map { Int64($0.value.hlc.rawValue) })::bigint[],
                                 \(entries.map(\.value.origin))::text[], \(entries.map { Int64($0.value.seq) })::bigint[])
            ON CONFLICT (conversation_id, user_id) DO UPDATE
              SET hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq
              WHERE (read_markers.hlc, read_markers.origin, read_markers.seq) < (excluded.hlc, excluded.origin, excluded.seq)
            """,
            logger: logger
        )
    }

    /// `INSERT INTO table SELECT * FROM unnest(arrays...) ON CONFLICT DO NOTHING`.
    private static func insert(
        _ columns: Columns, _ target: String, _ types: [String], _ tx: PostgresConnection, _ logger: Logger
    ) async throws {
        guard columns.rowCount(width: types.count) > 0 else { return }
        var query = PostgresQuery(unsafeSQL: "")
        var bindings = PostgresBindings(capacity: types.count)
        var placeholders: [String] = []
        for (index, type) in types.enumerated() {
            columns.bind(column: index, width: types.count, type: type, into: &bindings)
            placeholders.append("$\(index + 1)::\(type)[]")
        }
        query = PostgresQuery(
            unsafeSQL: "INSERT INTO \(target) SELECT * FROM unnest(\(placeholders.joined(separator: ", "))) ON CONFLICT DO NOTHING",
            binds: bindings
        )
        try await tx.query(query, logger: logger)
    }
}

/// Row-major values collected for a set-based insert, bound column by column.
struct Columns {
    private enum Value {
        case text(String), int(Int64), small(Int16), bool(Bool), bytes(ByteBuffer)
    }
    private var values: [Value] = []

    mutating func text(_ value: String) { values.append(.text(value)) }
    mutating func int(_ value: UInt64) { values.append(.int(Int64(value))) }
    mutating func small(_ value: Int16) { values.append(.small(value)) }
    mutating func bool(_ value: Bool) { values.append(.bool(value)) }
    mutating func bytes(_ value: ByteBuffer) { values.append(.bytes(value)) }

    func rowCount(width: Int) -> Int { values.count / width }

    /// Binds one column as a Postgres array of its type.
    func bind(column: Int, width: Int, type: String, into bindings: inout PostgresBindings) {
        var texts: [String] = [], ints: [Int64] = [], smalls: [Int16] = [], bools: [Bool] = [], blobs: [ByteBuffer] = []
        for index in stride(from: column, to: values.count, by: width) {
            switch values[index] {
            case .text(let v): texts.append(v)
            case .int(let v): ints.append(v)
            case .small(let v): smalls.append(v)
            case .bool(let v): bools.append(v)
            case .bytes(let v): blobs.append(v)
            }
        }
        switch type {
        case "text": bindings.append(texts)
        case "bigint": bindings.append(ints)
        case "int2": bindings.append(smalls)
        case "bool": bindings.append(bools)
        default: bindings.append(blobs)
        }
    }
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
