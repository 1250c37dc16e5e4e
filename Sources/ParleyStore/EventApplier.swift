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
    ///     origin to the carried user_seq (replicated events, and local
    ///     commits that numbered them from the counters they read).
    ///   - expectedHead: write only if the one origin in `heads` is still at
    ///     this seq when its row is locked (an optimistic commit); nil to write
    ///     regardless.
    /// - Returns: false when `expectedHead` did not hold and nothing was written.
    @discardableResult
    static func apply(
        _ events: [Parley_Event], knownOrders: [MessageID: ConversationOrder], heads: [OriginHead],
        carryCounters: Bool = false, expectedHead: UInt64? = nil, _ tx: DatabaseConnection, _ logger: Logger
    ) async throws -> Bool {
        let batch = ConvergentBatch(events.compactMap(\.replicated))
        var rows = DerivedRows(events, batch)
        if carryCounters { rows.addCounters(of: events) }
        var orders = knownOrders
        let missing = batch.readTargetsPostedEarlier.filter { orders[$0] == nil }
        if !missing.isEmpty { orders.merge(try await loadOrders(Array(missing), tx, logger)) { a, _ in a } }
        rows.addMarkers(batch.readMarkers { orders[$0] })
        rows.addHeads(heads)
        rows.expectedHead = expectedHead.map { Int64($0) } ?? -1
        for try await wrote in try await tx.execute(rows, logger: logger) { return wrote }
        throw StoreError(.brokenInvariant, "the event batch's statement returned no row")
    }

    private static func loadOrders(_ ids: [MessageID], _ tx: DatabaseConnection, _ logger: Logger) async throws -> [MessageID: ConversationOrder] {
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

/// The rows an event batch writes to each table, column by column, written by
/// one prepared statement.
///
/// The convergence rules are ParleyCore's `ConvergentBatch`: it reduces the
/// batch to one write per row (one statement may not touch a row twice), and
/// this only lays its writes out as columns. The statement's guards apply the
/// same rules against what is already stored, as `ConvergentState.absorb`
/// spells them out, so any batching gives the same state.
private struct DerivedRows: PostgresPreparedStatement {
    // events
    var logOrigin: [String] = [], logSeq: [Int64] = [], logHLC: [Int64] = [], logKind: [Int16] = [], logPayload: [ByteBuffer] = [],
        logConversation: [String] = []
    // inbox
    var inboxUser: [String] = [], inboxOrigin: [String] = [], inboxUserSeq: [Int64] = [], inboxEventSeq: [Int64] = []
    // users
    var userID: [String] = [], userOrigin: [String] = [], userSeq: [Int64] = []
    // conversations: direct ones fixed (stamp zero), groups the earliest creation
    var convID: [String] = [], convIsGroup: [Bool] = [], convName: [String] = [], convOwner: [String] = [],
        convHLC: [Int64] = [], convOrigin: [String] = []
    // members of direct conversations: fixed, inserted once
    var directConv: [String] = [], directUser: [String] = []
    // group membership registers
    var memberConv: [String] = [], memberUser: [String] = [], memberPresent: [Bool] = [], memberHLC: [Int64] = [],
        memberOrigin: [String] = []
    // messages
    var msgOrigin: [String] = [], msgSeq: [Int64] = [], msgConv: [String] = [], msgHLC: [Int64] = [],
        msgSender: [String] = [], msgBody: [String] = [], msgClientID: [String] = [], msgRecalled: [Bool] = [],
        msgEditHLC: [Int64] = [], msgEditOrigin: [String] = []
    // edits and recalls of messages stored before this batch
    var editOrigin: [String] = [], editSeq: [Int64] = [], editBody: [String] = [], editHLC: [Int64] = [], editBy: [String] = []
    var recallOrigin: [String] = [], recallSeq: [Int64] = []
    // client_messages: the winning message of each (sender, client_msg_id)
    var clientSender: [String] = [], clientID: [String] = [], clientOrigin: [String] = [], clientSeq: [Int64] = [],
        clientHLC: [Int64] = []
    // profiles
    var profileUser: [String] = [], profileField: [String] = [], profileValue: [String] = [], profileHLC: [Int64] = [],
        profileOrigin: [String] = []
    // user_settings
    var settingUser: [String] = [], settingKey: [String] = [], settingValue: [String] = [], settingHLC: [Int64] = [],
        settingOrigin: [String] = []
    // registers (conversation settings, roles, friendships, blocks)
    var regConv: [String] = [], regSubject: [String] = [], regName: [String] = [], regValue: [String] = [], regHLC: [Int64] = [],
        regOrigin: [String] = []
    // hidden_messages (deleted for one user)
    var hiddenUser: [String] = [], hiddenOrigin: [String] = [], hiddenSeq: [Int64] = [], hiddenConv: [String] = []
    // conversation_activity (each conversation's newest message)
    var activityConv: [String] = [], activityHLC: [Int64] = [], activityOrigin: [String] = [], activitySeq: [Int64] = []
    // read_markers
    var markConv: [String] = [], markUser: [String] = [], markHLC: [Int64] = [], markOrigin: [String] = [], markSeq: [Int64] = []
    // origins
    var headOrigin: [String] = [], headSeq: [Int64] = [], headHLC: [Int64] = []
    // user_counters (carried user_seqs)
    var counterUser: [String] = [], counterOrigin: [String] = [], counterSeq: [Int64] = []
    // the head an optimistic commit read, or -1
    var expectedHead: Int64 = -1

    /// `events` are new to this region and in causal order; `batch` is their reduction.
    init(_ events: [Parley_Event], _ batch: ConvergentBatch) {
        // A direct conversation is inserted once per batch, not once per message.
        var directConversations: Set<String> = []
        for event in events {
            addLog(event)
            switch event.kind {
            case .userRegistered(let registered):
                userID.append(registered.userID); userOrigin.append(event.origin); userSeq.append(Int64(event.seq))
            case .messagePosted(let posted):
                if let (a, b) = ConversationID.directUsers(of: posted.conversationID),
                   directConversations.insert(posted.conversationID).inserted {
                    addConversation(posted.conversationID, isGroup: false, name: "", owner: "", stamp: .zero)
                    for user in [a, b] { directConv.append(posted.conversationID); directUser.append(user) }
                }
            default:
                break
            }
        }
        for (id, message) in batch.messages {
            msgOrigin.append(id.origin); msgSeq.append(Int64(id.seq)); msgConv.append(message.conversation)
            msgHLC.append(Int64(message.order.hlc.rawValue)); msgSender.append(message.sender); msgBody.append(message.body)
            msgClientID.append(message.clientMsgID); msgRecalled.append(message.recalled)
            msgEditHLC.append(Int64(message.edit?.hlc.rawValue ?? 0)); msgEditOrigin.append(message.edit?.origin ?? "")
        }
        for (id, edit) in batch.edits {
            editOrigin.append(id.origin); editSeq.append(Int64(id.seq)); editBody.append(edit.value)
            editHLC.append(Int64(edit.stamp.hlc.rawValue)); editBy.append(edit.stamp.origin)
        }
        for id in batch.recalls { recallOrigin.append(id.origin); recallSeq.append(Int64(id.seq)) }
        for (key, winner) in batch.clientWinners {
            clientSender.append(key.sender); clientID.append(key.clientMsgID)
            clientOrigin.append(winner.id.origin); clientSeq.append(Int64(winner.id.seq))
            clientHLC.append(Int64(winner.stamp.hlc.rawValue))
        }
        for (conversation, group) in batch.groups {
            addConversation(conversation, isGroup: true, name: group.name, owner: group.owner, stamp: group.stamp)
        }
        for (key, member) in batch.membership {
            memberConv.append(key.owner); memberUser.append(key.name); memberPresent.append(member.value)
            memberHLC.append(Int64(member.stamp.hlc.rawValue)); memberOrigin.append(member.stamp.origin)
        }
        for (key, profile) in batch.profiles {
            profileUser.append(key.owner); profileField.append(key.name); profileValue.append(profile.value)
            profileHLC.append(Int64(profile.stamp.hlc.rawValue)); profileOrigin.append(profile.stamp.origin)
        }
        for (key, setting) in batch.settings {
            settingUser.append(key.owner); settingKey.append(key.name); settingValue.append(setting.value)
            settingHLC.append(Int64(setting.stamp.hlc.rawValue)); settingOrigin.append(setting.stamp.origin)
        }
        for (key, register) in batch.registers {
            regConv.append(key.conversation); regSubject.append(key.subject); regName.append(key.name); regValue.append(register.value)
            regHLC.append(Int64(register.stamp.hlc.rawValue)); regOrigin.append(register.stamp.origin)
        }
        for hidden in batch.hiddenFor {
            hiddenUser.append(hidden.user); hiddenOrigin.append(hidden.message.origin); hiddenSeq.append(Int64(hidden.message.seq))
            hiddenConv.append(hidden.conversation)
        }
        for (conversation, order) in batch.activity {
            activityConv.append(conversation); activityHLC.append(Int64(order.hlc.rawValue)); activityOrigin.append(order.origin)
            activitySeq.append(Int64(order.seq))
        }
    }

    private mutating func addLog(_ event: Parley_Event) {
        logOrigin.append(event.origin); logSeq.append(Int64(event.seq)); logHLC.append(Int64(event.hlc))
        logKind.append(event.kindNumber); logPayload.append(event.encodedBuffer); logConversation.append(event.conversationID)
        for entry in event.audience {
            inboxUser.append(entry.userID); inboxOrigin.append(event.origin)
            inboxUserSeq.append(Int64(entry.userSeq)); inboxEventSeq.append(Int64(event.seq))
        }
    }

    private mutating func addConversation(_ id: String, isGroup: Bool, name: String, owner: String, stamp: Stamp) {
        convID.append(id); convIsGroup.append(isGroup); convName.append(name); convOwner.append(owner)
        convHLC.append(Int64(stamp.hlc.rawValue)); convOrigin.append(stamp.origin)
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

    /// Whether the batch was written (false: `expectedHead` did not hold).
    typealias Row = Bool

    func decodeRow(_ row: PostgresRow) throws -> Bool { try row.decode(Bool.self) }

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 84)
        b.append(logOrigin); b.append(logSeq); b.append(logHLC); b.append(logKind); b.append(logPayload)  // 1-5
        b.append(inboxUser); b.append(inboxOrigin); b.append(inboxUserSeq); b.append(inboxEventSeq)  // 6-9
        b.append(userID); b.append(userOrigin); b.append(userSeq)  // 10-12
        b.append(convID); b.append(convIsGroup); b.append(convName); b.append(convOwner)  // 13-16
        b.append(directConv); b.append(directUser)  // 17-18
        b.append(msgOrigin); b.append(msgSeq); b.append(msgConv); b.append(msgHLC); b.append(msgSender); b.append(msgBody)  // 19-24
        b.append(msgClientID); b.append(msgRecalled); b.append(msgEditHLC); b.append(msgEditOrigin)  // 25-28
        b.append(clientSender); b.append(clientID); b.append(clientOrigin); b.append(clientSeq); b.append(clientHLC)  // 29-33
        b.append(markConv); b.append(markUser); b.append(markHLC); b.append(markOrigin); b.append(markSeq)  // 34-38
        b.append(headOrigin); b.append(headSeq); b.append(headHLC)  // 39-41
        b.append(counterUser); b.append(counterOrigin); b.append(counterSeq)  // 42-44
        b.append(memberConv); b.append(memberUser); b.append(memberPresent); b.append(memberHLC); b.append(memberOrigin)  // 45-49
        b.append(editOrigin); b.append(editSeq); b.append(editBody); b.append(editHLC); b.append(editBy)  // 50-54
        b.append(recallOrigin); b.append(recallSeq)  // 55-56
        b.append(profileUser); b.append(profileField); b.append(profileValue); b.append(profileHLC); b.append(profileOrigin)  // 57-61
        b.append(logConversation)  // 62
        b.append(convHLC); b.append(convOrigin)  // 63-64
        b.append(expectedHead)  // 65
        b.append(settingUser); b.append(settingKey); b.append(settingValue); b.append(settingHLC); b.append(settingOrigin)  // 66-70
        b.append(regConv); b.append(regSubject); b.append(regName); b.append(regValue); b.append(regHLC); b.append(regOrigin)  // 71-76
        b.append(hiddenUser); b.append(hiddenOrigin); b.append(hiddenSeq); b.append(hiddenConv)  // 77-80
        b.append(activityConv); b.append(activityHLC); b.append(activityOrigin); b.append(activitySeq)  // 81-84
        return b
    }

    /// Each table's write is a CTE; empty arrays write nothing. Registers
    /// (read markers, membership, edits, profiles, settings, registers, client-id winners, group
    /// rows, origin heads) only move to a winning stamp, so replays change
    /// nothing: the guards are `ConvergentState.absorb`'s, one per table.
    /// The heads move first: an optimistic commit's head must still be at
    /// `$65` and unfenced once its row is locked, or nothing is written
    /// (`ok`), and the commit goes the locked way, which refuses a fence.
    static let sql = """
        WITH
          hd AS (UPDATE origins o SET applied_seq = h.seq, last_hlc = GREATEST(o.last_hlc, h.hlc)
                 FROM unnest($39::text[], $40::bigint[], $41::bigint[]) AS h(origin, seq, hlc)
                 WHERE o.origin = h.origin AND o.applied_seq < h.seq AND ($65::bigint < 0 OR (o.applied_seq = $65::bigint AND o.fenced IS NULL))
                 RETURNING 1),
          ok AS (SELECT $65::bigint < 0 OR EXISTS (SELECT 1 FROM hd) AS ok),
          ev AS (INSERT INTO events (origin, seq, hlc, kind, payload, conversation_id)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int2[], $5::bytea[], $62::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT DO NOTHING),
          ib AS (INSERT INTO inbox (user_id, origin, user_seq, event_seq)
                 SELECT * FROM unnest($6::text[], $7::text[], $8::bigint[], $9::bigint[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT DO NOTHING),
          us AS (INSERT INTO users (user_id, origin, seq)
                 SELECT * FROM unnest($10::text[], $11::text[], $12::bigint[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT DO NOTHING),
          cv AS (INSERT INTO conversations (conversation_id, is_group, name, owner, hlc, origin)
                 SELECT * FROM unnest($13::text[], $14::bool[], $15::text[], $16::text[], $63::bigint[], $64::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (conversation_id) DO UPDATE
                   SET name = excluded.name, owner = excluded.owner, hlc = excluded.hlc, origin = excluded.origin
                   WHERE (excluded.hlc, excluded.origin) < (conversations.hlc, conversations.origin)),
          dm AS (INSERT INTO members (conversation_id, user_id)
                 SELECT * FROM unnest($17::text[], $18::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT DO NOTHING),
          ms AS (INSERT INTO messages (origin, seq, conversation_id, hlc, sender, body, client_msg_id, recalled, edit_hlc, edit_origin)
                 SELECT * FROM unnest($19::text[], $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::text[],
                                      $25::text[], $26::bool[], $27::bigint[], $28::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT DO NOTHING),
          cm AS (INSERT INTO client_messages (sender, client_msg_id, origin, seq, hlc)
                 SELECT * FROM unnest($29::text[], $30::text[], $31::text[], $32::bigint[], $33::bigint[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (sender, client_msg_id) DO UPDATE
                   SET origin = excluded.origin, seq = excluded.seq, hlc = excluded.hlc
                   WHERE (excluded.hlc, excluded.origin) < (client_messages.hlc, client_messages.origin)),
          rm AS (INSERT INTO read_markers (conversation_id, user_id, hlc, origin, seq)
                 SELECT * FROM unnest($34::text[], $35::text[], $36::bigint[], $37::text[], $38::bigint[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (conversation_id, user_id) DO UPDATE
                   SET hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq
                   WHERE (read_markers.hlc, read_markers.origin, read_markers.seq) < (excluded.hlc, excluded.origin, excluded.seq)),
          uc AS (INSERT INTO user_counters (user_id, origin, user_seq)
                 SELECT * FROM unnest($42::text[], $43::text[], $44::bigint[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (user_id, origin) DO UPDATE SET user_seq = GREATEST(user_counters.user_seq, excluded.user_seq)),
          gm AS (INSERT INTO members (conversation_id, user_id, present, hlc, origin)
                 SELECT * FROM unnest($45::text[], $46::text[], $47::bool[], $48::bigint[], $49::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (conversation_id, user_id) DO UPDATE
                   SET present = excluded.present, hlc = excluded.hlc, origin = excluded.origin
                   WHERE (members.hlc, members.origin) < (excluded.hlc, excluded.origin)),
          ed AS (UPDATE messages m SET body = x.body, edit_hlc = x.hlc, edit_origin = x.origin
                 FROM unnest($50::text[], $51::bigint[], $52::text[], $53::bigint[], $54::text[]) AS x(t_origin, t_seq, body, hlc, origin)
                 WHERE m.origin = x.t_origin AND m.seq = x.t_seq AND (SELECT ok FROM ok) AND NOT m.recalled
                   AND (m.edit_hlc, m.edit_origin) < (x.hlc, x.origin)),
          rc AS (UPDATE messages m SET recalled = true, body = '', edit_hlc = 0, edit_origin = ''
                 FROM unnest($55::text[], $56::bigint[]) AS x(t_origin, t_seq)
                 WHERE m.origin = x.t_origin AND m.seq = x.t_seq AND (SELECT ok FROM ok)),
          pf AS (INSERT INTO profiles (user_id, field, value, hlc, origin)
                 SELECT * FROM unnest($57::text[], $58::text[], $59::text[], $60::bigint[], $61::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (user_id, field) DO UPDATE
                   SET value = excluded.value, hlc = excluded.hlc, origin = excluded.origin
                   WHERE (profiles.hlc, profiles.origin) < (excluded.hlc, excluded.origin)),
          st AS (INSERT INTO user_settings (user_id, key, value, hlc, origin)
                 SELECT * FROM unnest($66::text[], $67::text[], $68::text[], $69::bigint[], $70::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (user_id, key) DO UPDATE
                   SET value = excluded.value, hlc = excluded.hlc, origin = excluded.origin
                   WHERE (user_settings.hlc, user_settings.origin) < (excluded.hlc, excluded.origin)),
          rg AS (INSERT INTO registers (conversation_id, subject, name, value, hlc, origin)
                 SELECT * FROM unnest($71::text[], $72::text[], $73::text[], $74::text[], $75::bigint[], $76::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (conversation_id, subject, name) DO UPDATE
                   SET value = excluded.value, hlc = excluded.hlc, origin = excluded.origin
                   WHERE (registers.hlc, registers.origin) < (excluded.hlc, excluded.origin)),
          hm AS (INSERT INTO hidden_messages (user_id, origin, seq, conversation_id)
                 SELECT * FROM unnest($77::text[], $78::text[], $79::bigint[], $80::text[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT DO NOTHING),
          ac AS (INSERT INTO conversation_activity (conversation_id, hlc, origin, seq)
                 SELECT * FROM unnest($81::text[], $82::bigint[], $83::text[], $84::bigint[]) WHERE (SELECT ok FROM ok)
                 ON CONFLICT (conversation_id) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq
                   WHERE (conversation_activity.hlc, conversation_activity.origin, conversation_activity.seq)
                       < (excluded.hlc, excluded.origin, excluded.seq))
        -- Wakes the sync's log watcher at commit (notifications of one transaction are merged).
        SELECT ok FROM ok, pg_notify('\(RegionStore.logChannel)', '')
        """
}

extension Parley_Event {
    /// The event as the convergence rules see it; nil for kinds that touch
    /// no replicated register (registrations) or name no valid message.
    var replicated: ReplicatedEvent? {
        let body: ReplicatedEvent.Body
        switch kind {
        case .messagePosted(let posted):
            body = .messagePosted(
                conversation: posted.conversationID, sender: posted.sender, clientMsgID: posted.clientMsgID, body: posted.body
            )
        case .readMoved(let read):
            guard let target = MessageID(read.messageID) else { return nil }
            body = .readMoved(conversation: read.conversationID, reader: read.reader, upTo: target)
        case .groupCreated(let group):
            body = .groupCreated(group: group.groupID, name: group.name, owner: group.owner, members: group.members)
        case .messageEdited(let edit):
            guard let target = MessageID(edit.messageID) else { return nil }
            body = .messageEdited(target: target, body: edit.body)
        case .messageRecalled(let recall):
            guard let target = MessageID(recall.messageID) else { return nil }
            body = .messageRecalled(target: target)
        case .memberAdded(let change):
            body = .memberAdded(group: change.groupID, member: change.userID)
        case .memberRemoved(let change):
            body = .memberRemoved(group: change.groupID, member: change.userID)
        case .profileSet(let profile):
            body = .profileSet(user: profile.userID, field: profile.field, value: profile.value)
        case .pushRegistered(let push):
            body = .settingSet(user: push.userID, key: UserSetting.pushToken(device: push.deviceID).key, value: push.token)
        case .conversationMuted(let mute):
            body = .settingSet(
                user: mute.userID, key: UserSetting.muted(conversation: mute.conversationID).key, value: UserSetting.muteValue(mute.muted)
            )
        case .remarkSet(let remark):
            body = .settingSet(user: remark.userID, key: UserSetting.remark(peer: remark.peer).key, value: remark.remark)
        case .friendshipChanged(let change):
            body = .registerSet(.friendship(change.userID, change.peer), value: change.resultingFriendship.registerValue)
        case .userBlocked(let block):
            body = .registerSet(.block(by: block.userID, of: block.peer), value: block.blocked ? "1" : "")
        case .groupUpdated(let update):
            guard let key = update.field.register(group: update.groupID) else { return nil }
            body = .registerSet(key, value: update.value)
        case .memberUpdated(let update):
            guard let key = update.field.register(group: update.groupID, member: update.userID) else { return nil }
            body = .registerSet(key, value: update.value)
        case .messageDeleted(let deleted):
            guard let target = MessageID(deleted.messageID) else { return nil }
            body = .messageHidden(user: deleted.userID, target: target, conversation: deleted.conversationID)
        case .conversationPinned(let pin):
            body = .settingSet(
                user: pin.userID, key: UserSetting.pinned(conversation: pin.conversationID).key, value: UserSetting.flagValue(pin.pinned)
            )
        case .tokensRevoked(let revoked):
            body = .settingSet(user: revoked.userID, key: UserSetting.tokensRevoked(device: revoked.deviceID).key, value: "\(revoked.beforeMs)")
        case .userRegistered, nil:
            return nil
        }
        return ReplicatedEvent(id: EventID(origin: origin, seq: seq), hlc: HLC(rawValue: hlc), deps: VersionVector(deps), body: body)
    }

    /// The `conversation_id` column: the conversation the event changes, or
    /// "" (registrations, profiles and settings belong to none). Friendships
    /// and blocks belong to the two users' direct conversation.
    var conversationID: String {
        switch kind {
        case .messagePosted(let posted): posted.conversationID
        case .readMoved(let read): read.conversationID
        case .groupCreated(let group): ConversationID.group(group.groupID)
        case .messageEdited(let edit): edit.conversationID
        case .messageRecalled(let recall): recall.conversationID
        case .memberAdded(let added): ConversationID.group(added.groupID)
        case .memberRemoved(let removed): ConversationID.group(removed.groupID)
        case .friendshipChanged(let change): ConversationID.direct(change.userID, change.peer)
        case .userBlocked(let block): ConversationID.direct(block.userID, block.peer)
        case .groupUpdated(let update): ConversationID.group(update.groupID)
        case .memberUpdated(let update): ConversationID.group(update.groupID)
        case .messageDeleted(let deleted): deleted.conversationID
        case .userRegistered, .profileSet, .pushRegistered, .conversationMuted, .remarkSet, .conversationPinned, .tokensRevoked, nil: ""
        }
    }

    /// The `kind` column: which body the event carries.
    var kindNumber: Int16 {
        switch kind {
        case .userRegistered: 1
        case .messagePosted: 2
        case .readMoved: 3
        case .groupCreated: 4
        case .messageEdited: 5
        case .messageRecalled: 6
        case .memberAdded: 7
        case .memberRemoved: 8
        case .profileSet: 9
        case .pushRegistered: 10
        case .conversationMuted: 11
        case .friendshipChanged: 12
        case .userBlocked: 13
        case .remarkSet: 14
        case .groupUpdated: 15
        case .memberUpdated: 16
        case .conversationPinned: 17
        case .messageDeleted: 18
        case .tokensRevoked: 19
        case nil: 0
        }
    }
}

extension Parley_FriendshipChanged {
    /// The friendship this change leaves between the two users.
    public var resultingFriendship: Friendship {
        switch action {
        case .friendRequested: .requested(by: userID, greeting: greeting)
        case .friendAccepted: .friends
        case .friendDeclined, .friendRemoved, .unspecified, .UNRECOGNIZED: .none
        }
    }
}

extension Parley_GroupField {
    /// The group's register this field sets; nil for an unknown field.
    public func register(group: String) -> RegisterKey? {
        switch self {
        case .groupName: .groupName(group)
        case .groupAnnouncement: .announcement(group)
        case .groupOwner: .owner(group)
        case .groupJoin: .joinPolicy(group)
        case .groupInvite: .invitePolicy(group)
        case .groupMuteAll: .muteAll(group)
        case .groupDissolved: .dissolved(group)
        case .unspecified, .UNRECOGNIZED: nil
        }
    }
}

extension Parley_MemberField {
    /// The member's register this field sets; nil for an unknown field.
    public func register(group: String, member: String) -> RegisterKey? {
        switch self {
        case .memberRole: .role(group, member)
        case .memberNickname: .nickname(group, member)
        case .memberMutedUntil: .mutedUntil(group, member)
        case .unspecified, .UNRECOGNIZED: nil
        }
    }
}
