/// The convergence rules (docs/REPLICATION.md), written once.
///
/// A `ConvergentBatch` reduces a causally ordered batch of new events to the
/// writes they make, one per row: the store writes exactly these (one
/// statement may not touch a row twice), and `ConvergentState`, the model of
/// a region used by the property tests, absorbs them the same way. Absorbing
/// into stored rows needs a guard per rule, which `absorb` spells out and the
/// store's SQL mirrors (ParleyStore, `DerivedRows.sql`); the store's property
/// test proves the two agree through a real PostgreSQL.
///
/// - conversation order is `(hlc, origin, seq)`;
/// - read markers only move forward (max by conversation order);
/// - recall/delete is a tombstone: it wins over the message and every edit,
///   and leaves neither body nor edit stamp;
/// - edits, profile fields, settings, registers, group membership: last writer wins by
///   `(hlc, origin)`, so a concurrent add and remove resolve to the later;
/// - one `(sender, client_msg_id)` accepted by two regions, or one group id
///   created by two: the lower `(hlc, origin)` wins;
/// - a message deleted for one user stays deleted for them (a union);
/// - a conversation's last activity is its newest message (a max).
public struct ConvergentBatch: Sendable {
    /// A message row: as posted, with the edits and recall that won folded in.
    public struct Message: Equatable, Sendable {
        public var conversation: String
        public var sender: String
        public var clientMsgID: String
        public var order: ConversationOrder
        public var body: String
        /// The stamp of the edit that set `body`; nil when unedited or recalled.
        public var edit: Stamp?
        public var recalled = false

        /// The edit rule: a later edit replaces the body, unless the message is recalled.
        mutating func offerEdit(_ body: String, at stamp: Stamp) {
            guard !recalled, stamp > edit ?? .zero else { return }
            self.body = body
            edit = stamp
        }

        /// The tombstone rule.
        mutating func recall() {
            recalled = true
            body = ""
            edit = nil
        }
    }

    /// A group's conversation row: the earliest creation wins.
    public struct Group: Equatable, Sendable {
        public var name: String
        public var owner: String
        public var stamp: Stamp
    }

    public struct Winner: Equatable, Sendable {
        public var id: EventID
        public var stamp: Stamp
    }

    /// A register's key: (group conversation, member), (user, profile field) or (user, setting).
    public struct FieldKey: Hashable, Sendable {
        public var owner: String
        public var name: String
    }

    /// Events in the batch, in the order given.
    public private(set) var ids: [EventID] = []
    /// Messages posted in this batch.
    public private(set) var messages: [EventID: Message] = [:]
    /// Edits of messages posted before the batch, the winner per message.
    public private(set) var edits: [EventID: LastWriterWins<String>] = [:]
    /// Recalls of messages posted before the batch.
    public private(set) var recalls: Set<EventID> = []
    /// The winning message of each (sender, client_msg_id) posted in the batch.
    public private(set) var clientWinners: [PostKey: Winner] = [:]
    /// Group conversations created in the batch, by conversation id.
    public private(set) var groups: [String: Group] = [:]
    /// Membership registers: (group conversation, user) → present.
    public private(set) var membership: [FieldKey: LastWriterWins<Bool>] = [:]
    /// Profile registers: (user, field) → value.
    public private(set) var profiles: [FieldKey: LastWriterWins<String>] = [:]
    /// Private setting registers: (user, `UserSetting.key`) → value.
    public private(set) var settings: [FieldKey: LastWriterWins<String>] = [:]
    /// Conversation registers (`RegisterKey`): group settings, roles, friendships, blocks.
    public private(set) var registers: [RegisterKey: LastWriterWins<String>] = [:]
    /// Messages deleted for one user (delete for me).
    public private(set) var hiddenFor: Set<HiddenMessage> = []
    /// The messages each reader's read moves in the batch name.
    public private(set) var reads: [ReaderKey: Set<EventID>] = [:]

    public init() {}

    public init(_ events: some Sequence<ReplicatedEvent>) {
        for event in events { add(event) }
    }

    /// Adds the next event. Events are new and in causal order: a message
    /// comes before its edits, recall and reads.
    public mutating func add(_ event: ReplicatedEvent) {
        ids.append(event.id)
        let stamp = event.stamp
        switch event.body {
        case .groupCreated(let group, let name, let owner, let members):
            let conversation = ConversationID.group(group)
            let created = Group(name: name, owner: owner, stamp: stamp)
            if let current = groups[conversation], current.stamp < stamp {} else { groups[conversation] = created }
            for member in Set(members).union([owner]) { offerMember(conversation, member, true, stamp) }
        case .memberAdded(let group, let member):
            offerMember(ConversationID.group(group), member, true, stamp)
        case .memberRemoved(let group, let member):
            offerMember(ConversationID.group(group), member, false, stamp)
        case .messagePosted(let conversation, let sender, let clientMsgID, let body):
            messages[event.id] = Message(
                conversation: conversation, sender: sender, clientMsgID: clientMsgID, order: event.order, body: body
            )
            let key = PostKey(sender: sender, clientMsgID: clientMsgID)
            if let current = clientWinners[key], current.stamp < stamp {} else { clientWinners[key] = Winner(id: event.id, stamp: stamp) }
        case .messageEdited(let target, let body):
            if messages[target] != nil {
                messages[target]?.offerEdit(body, at: stamp)
            } else if !recalls.contains(target) {
                edits[target, default: LastWriterWins(body, at: stamp)].offer(body, at: stamp)
            }
        case .messageRecalled(let target):
            if messages[target] != nil {
                messages[target]?.recall()
            } else {
                recalls.insert(target)
                edits[target] = nil
            }
        case .readMoved(let conversation, let reader, let upTo):
            reads[ReaderKey(conversationID: conversation, userID: reader), default: []].insert(upTo)
        case .profileSet(let user, let field, let value):
            let key = FieldKey(owner: user, name: field)
            profiles[key, default: LastWriterWins(value, at: stamp)].offer(value, at: stamp)
        case .settingSet(let user, let name, let value):
            let key = FieldKey(owner: user, name: name)
            settings[key, default: LastWriterWins(value, at: stamp)].offer(value, at: stamp)
        case .registerSet(let key, let value):
            registers[key, default: LastWriterWins(value, at: stamp)].offer(value, at: stamp)
        case .messageHidden(let user, let target, let conversation):
            hiddenFor.insert(HiddenMessage(user: user, message: target, conversation: conversation))
        }
    }

    private mutating func offerMember(_ conversation: String, _ member: String, _ present: Bool, _ stamp: Stamp) {
        membership[FieldKey(owner: conversation, name: member), default: LastWriterWins(present, at: stamp)].offer(present, at: stamp)
    }

    /// Each conversation's newest message posted in the batch.
    public var activity: [String: ConversationOrder] {
        messages.values.reduce(into: [:]) { newest, message in
            newest[message.conversation] = max(newest[message.conversation] ?? message.order, message.order)
        }
    }

    /// Messages the batch's reads name that it did not post: their order
    /// must come from what is stored.
    public var readTargetsPostedEarlier: Set<EventID> {
        Set(reads.values.joined()).subtracting(messages.keys)
    }

    /// Where each reader's marker moves: the highest conversation order
    /// among the messages its reads name. `storedOrder` knows messages posted
    /// before the batch; a read of a message it does not know is dropped.
    public func readMarkers(storedOrder: (EventID) -> ConversationOrder?) -> [ReaderKey: ConversationOrder] {
        reads.compactMapValues { targets in
            targets.compactMap { messages[$0]?.order ?? storedOrder($0) }.max()
        }
    }
}

/// A register where the later `(hlc, origin)` stamp wins.
public struct LastWriterWins<Value: Equatable & Sendable>: Equatable, Sendable {
    public private(set) var value: Value
    public private(set) var stamp: Stamp

    public init(_ value: Value, at stamp: Stamp) {
        self.value = value
        self.stamp = stamp
    }

    public mutating func offer(_ value: Value, at stamp: Stamp) {
        if stamp > self.stamp { self = LastWriterWins(value, at: stamp) }
    }

    /// Keeps the later of two registers.
    public mutating func offer(_ other: LastWriterWins) { offer(other.value, at: other.stamp) }
}

/// A post's idempotency key: a device's retry of one message.
public struct PostKey: Hashable, Sendable {
    public var sender: String
    public var clientMsgID: String

    public init(sender: String, clientMsgID: String) {
        self.sender = sender
        self.clientMsgID = clientMsgID
    }
}

/// A message one user deleted for themselves.
public struct HiddenMessage: Hashable, Sendable {
    public var user: String
    public var message: EventID
    public var conversation: String

    public init(user: String, message: EventID, conversation: String) {
        self.user = user
        self.message = message
        self.conversation = conversation
    }
}

/// A reader's marker in one conversation.
public struct ReaderKey: Hashable, Sendable {
    public var conversationID: String
    public var userID: String

    public init(conversationID: String, userID: String) {
        self.conversationID = conversationID
        self.userID = userID
    }
}
