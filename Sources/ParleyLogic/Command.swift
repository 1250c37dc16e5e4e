import ParleyCore
import ParleyProto
import ParleyStore

/// A state change asked of the region, before it becomes an event:
/// `CommitPlanner` checks it against stored state and turns it into one.
public enum Command: Sendable {
    /// Records a user the first time they sign in.
    case register(userID: String)
    case post(Post)
    case markRead(reader: String, conversationID: String, messageID: MessageID)
    case createGroup(owner: String, groupID: String, name: String, members: [String])
    /// The sender replaces a message's body.
    case edit(editor: String, messageID: MessageID, body: String)
    /// The sender (or a group's owner) recalls a message: a tombstone.
    case recall(by: String, messageID: MessageID)
    case addMember(by: String, groupID: String, userID: String)
    case removeMember(by: String, groupID: String, userID: String)
    case setProfile(userID: String, field: String, value: String)
    /// A device's push token; empty stops its notifications.
    case registerPush(userID: String, deviceID: String, token: String)
    /// Mutes one conversation ("" for all) on every device of the user.
    case mute(userID: String, conversationID: String, muted: Bool)
}

public struct Post: Sendable {
    public enum Target: Sendable, Hashable {
        case user(String)
        case group(String)
    }

    public var sender: String
    public var senderDevice: String
    public var clientMsgID: String
    public var target: Target
    public var body: String

    public init(sender: String, senderDevice: String, clientMsgID: String, target: Target, body: String) {
        self.sender = sender
        self.senderDevice = senderDevice
        self.clientMsgID = clientMsgID
        self.target = target
        self.body = body
    }

    public var conversationID: String {
        switch target {
        case .user(let peer): ConversationID.direct(sender, peer)
        case .group(let group): ConversationID.group(group)
        }
    }
}

/// The limits a commit enforces on every path that could break them.
public struct CommitRules: Sendable {
    /// Members of a group, counting the owner: checked at creation and on every add.
    public var maxGroupMembers = 1_000

    public init(maxGroupMembers: Int = 1_000) {
        self.maxGroupMembers = maxGroupMembers
    }
}

/// What became of one command in a group commit.
public enum CommitOutcome: Sendable {
    case committed(Parley_Event)
    /// A retried post: the event its first attempt committed.
    case duplicate(Parley_Event)
    /// Nothing to record (an already known user, a read marker that would move back).
    case unchanged
    case rejected(ClientError)
}
