/// The named last-writer-wins values that friends, blocks and group
/// settings are made of (docs/REPLICATION.md, "Registers"). Each belongs to
/// a conversation, so `parley check` digests it with that conversation:
/// a group's settings and its members' roles to `g:<group>`, a friendship
/// and the blocks between two users to their direct conversation `d:<a>:<b>`.
public struct RegisterKey: Hashable, Sendable {
    public var conversation: String
    /// "" for the conversation itself (a group setting, a friendship); a
    /// user for what concerns one member (a role, a nickname) or one side (a block).
    public var subject: String
    public var name: String

    public init(conversation: String, subject: String, name: String) {
        self.conversation = conversation
        self.subject = subject
        self.name = name
    }

    // A group's settings.
    public static func groupName(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "name") }
    public static func announcement(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "announcement") }
    public static func owner(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "owner") }
    /// "open" or "invite" (the default).
    public static func joinPolicy(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "join") }
    /// "members" (the default) or "admins".
    public static func invitePolicy(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "invite") }
    public static func muteAll(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "mute_all") }
    public static func dissolved(_ group: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: "", name: "dissolved") }

    // One member of a group.
    /// "admin" or "member"; counts only when written after the member's last add (`GroupRole`).
    public static func role(_ group: String, _ member: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: member, name: "role") }
    public static func nickname(_ group: String, _ member: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: member, name: "nickname") }
    /// Milliseconds since 1970, in decimal; "" when not muted.
    public static func mutedUntil(_ group: String, _ member: String) -> RegisterKey { .init(conversation: ConversationID.group(group), subject: member, name: "muted_until") }

    // Two users.
    /// A `Friendship`'s register form.
    public static func friendship(_ a: String, _ b: String) -> RegisterKey { .init(conversation: ConversationID.direct(a, b), subject: "", name: "friend") }
    /// "1" while `blocker` blocks `blocked`.
    public static func block(by blocker: String, of blocked: String) -> RegisterKey {
        .init(conversation: ConversationID.direct(blocker, blocked), subject: blocker, name: "block")
    }
}

/// Where two users stand, as one register of their direct conversation.
public enum Friendship: Hashable, Sendable {
    case none
    /// `by` asked the other, with a greeting; waiting for an answer.
    case requested(by: String, greeting: String)
    case friends

    /// The register's value: "", "friends" or "requested:<user>:<greeting>"
    /// (user ids hold no colon).
    public var registerValue: String {
        switch self {
        case .none: ""
        case .friends: "friends"
        case .requested(let by, let greeting): "requested:\(by):\(greeting)"
        }
    }

    public init(registerValue value: String) {
        if value == "friends" {
            self = .friends
        } else if value.hasPrefix("requested:") {
            let rest = value.dropFirst("requested:".count)
            let by = rest.prefix { $0 != ":" }
            self = .requested(by: String(by), greeting: String(rest.dropFirst(by.count + 1)))
        } else {
            self = .none
        }
    }
}

/// A member's standing in a group, derived from registers: the owner is the
/// `owner` register (else the creator); an `admin` role counts only when
/// written after the member's latest add, so a member removed and added
/// again comes back a plain member whatever order the regions saw it in.
public enum GroupRole: Int, Comparable, Sendable, CustomStringConvertible {
    case member, admin, owner

    public static func < (a: GroupRole, b: GroupRole) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .member: "member"
        case .admin: "admin"
        case .owner: "owner"
        }
    }

    /// - Parameters:
    ///   - owner: the group's owner (the register, else the creator).
    ///   - role: the member's role register and its stamp, if any.
    ///   - added: the stamp of the membership register that made them present.
    public static func of(_ user: String, owner: String, role: (value: String, stamp: Stamp)?, added: Stamp) -> GroupRole {
        if user == owner { return .owner }
        if let role, role.value == "admin", role.stamp > added { return .admin }
        return .member
    }
}
