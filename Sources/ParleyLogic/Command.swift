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
    /// Asks `peer` to be friends (accepts when `peer` asked first).
    case friendRequest(userID: String, peer: String, greeting: String)
    case friendRespond(userID: String, peer: String, accept: Bool)
    /// Ends a friendship or withdraws one's own request.
    case friendRemove(userID: String, peer: String)
    case block(userID: String, peer: String, blocked: Bool)
    case setRemark(userID: String, peer: String, remark: String)
    /// Sets one of a group's settings, hands it over (`groupOwner`) or dissolves it.
    case updateGroup(by: String, groupID: String, field: Parley_GroupField, value: String)
    /// Sets a member's role, nickname or mute.
    case updateMember(by: String, groupID: String, member: String, field: Parley_MemberField, value: String)
    /// Joins a group whose join policy is "open".
    case joinGroup(userID: String, groupID: String)
    /// Deletes a message for the user's own devices.
    case deleteForMe(userID: String, messageID: MessageID)
    /// Pins one conversation to the top of the user's list, on every device.
    case pin(userID: String, conversationID: String, pinned: Bool)
    /// Refuses the user's tokens issued until `beforeMs` for a device ("": all).
    case revokeTokens(userID: String, deviceID: String, beforeMs: UInt64)
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
    /// Media by reference; nil for a text message.
    public var attachment: Parley_Attachment?
    /// The message this one answers, in the same conversation.
    public var replyTo: MessageID?
    /// Members the message names (groups only).
    public var mentions: [String] = []

    public init(
        sender: String, senderDevice: String, clientMsgID: String, target: Target, body: String,
        attachment: Parley_Attachment? = nil, replyTo: MessageID? = nil, mentions: [String] = []
    ) {
        self.sender = sender
        self.senderDevice = senderDevice
        self.clientMsgID = clientMsgID
        self.target = target
        self.body = body
        self.attachment = attachment
        self.replyTo = replyTo
        self.mentions = mentions
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
    /// How long the sender may recall a message; owners and admins of a group need no window.
    public var recallWindowMs: UInt64 = 120_000

    public init(maxGroupMembers: Int = 1_000, recallWindowMs: UInt64 = 120_000) {
        self.maxGroupMembers = maxGroupMembers
        self.recallWindowMs = recallWindowMs
    }

    // Sizes of what groups and friends carry, in UTF-8 bytes.
    public static let maxGroupName = 256
    public static let maxAnnouncement = 4096
    public static let maxNickname = 64
    public static let maxGreeting = 1024
    public static let maxRemark = 256
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
