/// The state every region derives from the events it has applied, and the
/// rules that make it converge (docs/REPLICATION.md):
///
/// - conversation order is `(hlc, origin, seq)`;
/// - read markers only move forward (max);
/// - recall/delete is a tombstone and wins over the message and every edit;
/// - edits and profile fields: last writer wins by `(hlc, origin)`;
/// - group membership: last writer wins by `(hlc, origin)` per (group, member),
///   so a concurrent add and remove resolve to the later of the two;
/// - one `(sender, client_msg_id)` accepted by two regions: the lower
///   `(hlc, origin)` wins, the other message is hidden.
///
/// `apply` is idempotent and gives the same state for any causal delivery
/// order of the same events: every rule is a max or a union.
public struct ConvergentState: Equatable, Sendable {
    public struct Message: Equatable, Sendable {
        public var conversation: String
        public var sender: String
        public var clientMsgID: String
        public var order: ConversationOrder
        public var body: String
        public var bodyStamp: Stamp
        public var recalled = false
    }

    struct Register<Value: Equatable & Sendable>: Equatable, Sendable {
        var value: Value
        var stamp: Stamp

        /// Keeps the later write.
        mutating func offer(_ value: Value, at stamp: Stamp) {
            if stamp > self.stamp { self = Register(value: value, stamp: stamp) }
        }
    }

    private struct ClientKey: Hashable, Sendable {
        var sender: String
        var clientMsgID: String
    }

    public private(set) var applied = Set<EventID>()
    public private(set) var messages: [EventID: Message] = [:]
    /// Recalls whose message has not arrived (they cannot, causally, but a
    /// tombstone must win whatever the order).
    private var tombstones = Set<EventID>()
    private var pendingEdits: [EventID: Register<String>] = [:]
    private var clientWinners: [ClientKey: (stamp: Stamp, id: EventID)] = [:]
    public private(set) var readMarkers: [ReaderKey: ConversationOrder] = [:]
    private var membership: [String: [String: Register<Bool>]] = [:]
    private var profiles: [String: [String: Register<String>]] = [:]

    public struct ReaderKey: Hashable, Sendable {
        public let conversation: String
        public let reader: String

        public init(conversation: String, reader: String) {
            self.conversation = conversation
            self.reader = reader
        }
    }

    public init() {}

    public static func == (a: ConvergentState, b: ConvergentState) -> Bool {
        a.applied == b.applied && a.messages == b.messages && a.tombstones == b.tombstones
            && a.readMarkers == b.readMarkers && a.membership == b.membership && a.profiles == b.profiles
            && a.pendingEdits == b.pendingEdits
            && a.clientWinners.mapValues(\.id) == b.clientWinners.mapValues(\.id)
    }

    public mutating func apply(_ event: ReplicatedEvent) {
        guard applied.insert(event.id).inserted else { return }
        let stamp = event.stamp
        switch event.body {
        case .groupCreated(let group, let owner, let members):
            for member in Set(members).union([owner]) { setMember(group, member, true, stamp) }
        case .memberAdded(let group, let member):
            setMember(group, member, true, stamp)
        case .memberRemoved(let group, let member):
            setMember(group, member, false, stamp)
        case .messagePosted(let conversation, let sender, let clientMsgID, let body):
            var message = Message(
                conversation: conversation, sender: sender, clientMsgID: clientMsgID,
                order: event.order, body: body, bodyStamp: stamp, recalled: tombstones.contains(event.id)
            )
            if let edit = pendingEdits.removeValue(forKey: event.id), edit.stamp > stamp {
                message.body = edit.value
                message.bodyStamp = edit.stamp
            }
            messages[event.id] = message
            let key = ClientKey(sender: sender, clientMsgID: clientMsgID)
            if let current = clientWinners[key], current.stamp <= stamp { break }
            clientWinners[key] = (stamp, event.id)
        case .messageEdited(let target, let body):
            if var message = messages[target] {
                if stamp > message.bodyStamp {
                    message.body = body
                    message.bodyStamp = stamp
                    messages[target] = message
                }
            } else {
                pendingEdits[target, default: Register(value: body, stamp: stamp)].offer(body, at: stamp)
            }
        case .messageRecalled(let target):
            tombstones.insert(target)
            messages[target]?.recalled = true
        case .readMoved(let conversation, let reader, let upTo):
            // The marker's position is the order of the message it names; the
            // message precedes the marker causally, so it is known here.
            guard let order = messages[upTo]?.order else { break }
            let key = ReaderKey(conversation: conversation, reader: reader)
            if let current = readMarkers[key], current >= order { break }
            readMarkers[key] = order
        case .profileSet(let user, let field, let value):
            if profiles[user]?[field] == nil {
                profiles[user, default: [:]][field] = Register(value: value, stamp: stamp)
            } else {
                profiles[user]?[field]?.offer(value, at: stamp)
            }
        }
    }

    private mutating func setMember(_ group: String, _ member: String, _ present: Bool, _ stamp: Stamp) {
        if membership[group]?[member] == nil {
            membership[group, default: [:]][member] = Register(value: present, stamp: stamp)
        } else {
            membership[group]?[member]?.offer(present, at: stamp)
        }
    }

    // MARK: - Reading the state

    /// True when another message with the same (sender, client_msg_id) won.
    public func isHidden(_ id: EventID) -> Bool {
        guard let message = messages[id],
              let winner = clientWinners[ClientKey(sender: message.sender, clientMsgID: message.clientMsgID)]
        else { return false }
        return winner.id != id
    }

    /// A conversation's visible messages in conversation order: hidden
    /// duplicates left out, recalled ones kept as tombstones.
    public func conversation(_ id: String) -> [(id: EventID, message: Message)] {
        messages.filter { $0.value.conversation == id && !isHidden($0.key) }
            .map { (id: $0.key, message: $0.value) }
            .sorted { $0.message.order < $1.message.order }
    }

    public func members(of group: String) -> Set<String> {
        Set((membership[group] ?? [:]).filter(\.value.value).keys)
    }

    public func profile(of user: String, field: String) -> String? { profiles[user]?[field]?.value }
}
