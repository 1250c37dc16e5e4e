/// The order of last-writer-wins decisions: `(hlc, origin)`. Two regions never
/// produce the same stamp for different events of the same field, because an
/// origin's hlc strictly increases.
public struct Stamp: Hashable, Comparable, Sendable {
    public let hlc: HLC
    public let origin: String

    public init(hlc: HLC, origin: String) {
        self.hlc = hlc
        self.origin = origin
    }

    public static func < (a: Stamp, b: Stamp) -> Bool { (a.hlc, a.origin) < (b.hlc, b.origin) }

    /// Below every event's stamp: an unedited message's edit stamp.
    public static let zero = Stamp(hlc: HLC(rawValue: 0), origin: "")
}

/// A change as every region replicates it: the pure model the convergence
/// rules are written against (the wire form is `Parley_Event`).
public struct ReplicatedEvent: Hashable, Sendable {
    public enum Body: Hashable, Sendable {
        case groupCreated(group: String, name: String, owner: String, members: [String])
        case memberAdded(group: String, member: String)
        case memberRemoved(group: String, member: String)
        case messagePosted(conversation: String, sender: String, clientMsgID: String, body: String)
        case messageEdited(target: EventID, body: String)
        /// Recall and delete are the same tombstone as far as convergence goes.
        case messageRecalled(target: EventID)
        case readMoved(conversation: String, reader: String, upTo: EventID)
        case profileSet(user: String, field: String, value: String)
        /// One of a user's private settings (`UserSetting`): a push token, a mute.
        case settingSet(user: String, key: String, value: String)
        /// A register of a conversation (`RegisterKey`): a group setting, a
        /// member's role, a friendship, a block.
        case registerSet(RegisterKey, value: String)
        /// A message deleted for one user's devices only.
        case messageHidden(user: String, target: EventID, conversation: String)
    }

    public let id: EventID
    public let hlc: HLC
    /// The origin's applied vector when the event was created.
    public let deps: VersionVector
    public let body: Body

    public init(id: EventID, hlc: HLC, deps: VersionVector, body: Body) {
        self.id = id
        self.hlc = hlc
        self.deps = deps
        self.body = body
    }

    public var stamp: Stamp { Stamp(hlc: hlc, origin: id.origin) }
    public var order: ConversationOrder { ConversationOrder(hlc: hlc, origin: id.origin, seq: id.seq) }
}
