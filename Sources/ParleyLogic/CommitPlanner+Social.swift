import ParleyCore
import ParleyProto
import ParleyStore

/// The rules of friends, blocks and group administration: who may do what,
/// checked against registers (docs/PROTOCOL.md, "Friends" and "Groups").
/// Every change here is one register write (docs/REPLICATION.md, "Registers").
extension CommitPlanner {
    /// The stored rows a friend, block or group command checks.
    static func socialKeys(_ command: Command, into keys: inout SnapshotKeys) {
        switch command {
        case .friendRequest(let user, let peer, _), .friendRespond(let user, let peer, _), .friendRemove(let user, let peer),
            .block(let user, let peer, _):
            keys.users.formUnion([user, peer])
            let direct = ConversationID.direct(user, peer)
            for subject in ["", user, peer] { keys.subjects.insert(RegisterOwner(conversation: direct, subject: subject)) }
        case .setRemark(let user, let peer, _):
            keys.users.formUnion([user, peer])
        case .updateGroup(let by, let groupID, _, _):
            keys.users.insert(by)
            keys.conversations.insert(ConversationID.group(groupID))
            keys.subjects.insert(RegisterOwner(conversation: ConversationID.group(groupID), subject: by))
        case .updateMember(let by, let groupID, let member, _, _):
            keys.users.formUnion([by, member])
            keys.conversations.insert(ConversationID.group(groupID))
            for subject in [by, member] { keys.subjects.insert(RegisterOwner(conversation: ConversationID.group(groupID), subject: subject)) }
        case .joinGroup(let user, let groupID):
            keys.users.insert(user)
            keys.conversations.insert(ConversationID.group(groupID))
        default:
            break
        }
    }

    mutating func planSocial(_ command: Command) -> CommitOutcome {
        switch command {
        case .friendRequest(let user, let peer, let greeting): planFriendRequest(user, peer, greeting)
        case .friendRespond(let user, let peer, let accept): planFriendRespond(user, peer, accept)
        case .friendRemove(let user, let peer): planFriendRemove(user, peer)
        case .block(let user, let peer, let blocked): planBlock(user, peer, blocked)
        case .setRemark(let user, let peer, let remark): planRemark(user, peer, remark)
        case .updateGroup(let by, let groupID, let field, let value): planUpdateGroup(by, groupID, field, value)
        case .updateMember(let by, let groupID, let member, let field, let value): planUpdateMember(by, groupID, member, field, value)
        case .joinGroup(let user, let groupID): planJoin(user, groupID)
        default: .rejected(ClientError(.internalError, "not a social command"))
        }
    }

    // MARK: - Reading registers

    func register(_ key: RegisterKey) -> String { snapshot.registers[key]?.value ?? "" }

    func blocks(_ blocker: String, _ blocked: String) -> Bool { register(.block(by: blocker, of: blocked)) == "1" }

    /// The group's owner: the `owner` register once handed over, else the creator.
    func owner(of groupID: String) -> String {
        let handedTo = register(.owner(groupID))
        return handedTo.isEmpty ? snapshot.owners[ConversationID.group(groupID)] ?? "" : handedTo
    }

    func isDissolved(_ groupID: String) -> Bool { register(.dissolved(groupID)) == "1" }

    /// The user's role in the group; nil when not a present member.
    func role(of user: String, in groupID: String) -> GroupRole? {
        let conversation = ConversationID.group(groupID)
        guard snapshot.members[conversation]?.contains(user) == true else { return nil }
        let role = snapshot.registers[.role(groupID, user)]
        let added = snapshot.membershipStamps[RegisterOwner(conversation: conversation, subject: user)] ?? .zero
        return GroupRole.of(user, owner: owner(of: groupID), role: role.map { ($0.value, $0.stamp) }, added: added)
    }

    /// Why `user` may not post to the group now, if they may not: dissolved, or muted.
    func groupPostRefusal(_ user: String, _ groupID: String) -> ClientError? {
        if isDissolved(groupID) { return ClientError(.groupDissolved, "group \(groupID) was dissolved") }
        let role = role(of: user, in: groupID) ?? .member
        guard role != .owner else { return nil }
        if let until = UInt64(register(.mutedUntil(groupID, user))), until > proposedHLC.milliseconds {
            return ClientError(.muted, "you are muted in group \(groupID) until \(until) ms")
        }
        if register(.muteAll(groupID)) == "1", role == .member {
            return ClientError(.muted, "only the owner and admins may send in group \(groupID) now")
        }
        return nil
    }

    /// A group setting as it stands: its register once written, else what
    /// the creation or the default says.
    func effectiveSetting(_ field: Parley_GroupField, of groupID: String) -> String {
        switch field {
        case .groupOwner: return owner(of: groupID)
        case .groupName: return snapshot.registers[.groupName(groupID)]?.value ?? snapshot.groupNames[ConversationID.group(groupID)] ?? ""
        case .groupJoin: return snapshot.registers[.joinPolicy(groupID)]?.value ?? "invite"
        case .groupInvite: return snapshot.registers[.invitePolicy(groupID)]?.value ?? "members"
        default: return field.register(group: groupID).map(register) ?? ""
        }
    }

    /// Records a register write in the snapshot, for the batch's later commands.
    mutating func wrote(_ key: RegisterKey, _ value: String, by event: Parley_Event) {
        snapshot.registers[key] = (value, Stamp(hlc: HLC(rawValue: event.hlc), origin: event.origin))
    }

    // MARK: - Friends and blocks

    /// A real, other user: services and unknown ids are `unknown_user`.
    private func checkPeer(_ user: String, _ peer: String) -> ClientError? {
        if peer == user { return ClientError(.invalidRequest, "that is yourself") }
        guard snapshot.knownUsers.contains(peer), !ServiceAccount.isService(peer) else { return ClientError(.unknownUser, "unknown user \(peer)") }
        return nil
    }

    private func friendship(_ a: String, _ b: String) -> Friendship { Friendship(registerValue: register(.friendship(a, b))) }

    private mutating func planFriendRequest(_ user: String, _ peer: String, _ greeting: String) -> CommitOutcome {
        if let refusal = checkPeer(user, peer) { return .rejected(refusal) }
        guard greeting.utf8.count <= CommitRules.maxGreeting else {
            return .rejected(ClientError(.payloadTooLarge, "a greeting has at most \(CommitRules.maxGreeting) bytes"))
        }
        guard !blocks(peer, user) else { return .rejected(ClientError(.blocked, "\(peer) blocked you")) }
        switch friendship(user, peer) {
        case .friends: return .unchanged
        case .requested(let by, _) where by == peer: return friendshipChanged(user, peer, .friendAccepted)
        case .requested(let by, let asked) where by == user && asked == greeting: return .unchanged
        default: return friendshipChanged(user, peer, .friendRequested, greeting: greeting)
        }
    }

    private mutating func planFriendRespond(_ user: String, _ peer: String, _ accept: Bool) -> CommitOutcome {
        if let refusal = checkPeer(user, peer) { return .rejected(refusal) }
        guard case .requested(let by, _) = friendship(user, peer), by == peer else {
            return .rejected(ClientError(.noRequest, "no friend request from \(peer) is waiting"))
        }
        return friendshipChanged(user, peer, accept ? .friendAccepted : .friendDeclined)
    }

    private mutating func planFriendRemove(_ user: String, _ peer: String) -> CommitOutcome {
        if let refusal = checkPeer(user, peer) { return .rejected(refusal) }
        switch friendship(user, peer) {
        case .none: return .unchanged
        case .friends: return friendshipChanged(user, peer, .friendRemoved)
        // Removing a request: one's own is withdrawn, the other's declined.
        case .requested(let by, _): return friendshipChanged(user, peer, by == user ? .friendRemoved : .friendDeclined)
        }
    }

    private mutating func friendshipChanged(_ user: String, _ peer: String, _ action: Parley_FriendAction, greeting: String = "") -> CommitOutcome {
        var change = Parley_FriendshipChanged()
        change.userID = user
        change.peer = peer
        change.action = action
        change.greeting = greeting
        let event = append(audience: [user, peer].sorted()) { $0.friendshipChanged = change }
        wrote(.friendship(user, peer), change.resultingFriendship.registerValue, by: event)
        return .committed(event)
    }

    private mutating func planBlock(_ user: String, _ peer: String, _ blocked: Bool) -> CommitOutcome {
        if let refusal = checkPeer(user, peer) { return .rejected(refusal) }
        guard blocks(user, peer) != blocked else { return .unchanged }
        // Only the blocker's devices hear of it.
        let event = append(audience: [user]) { event in
            event.userBlocked = .with {
                $0.userID = user
                $0.peer = peer
                $0.blocked = blocked
            }
        }
        wrote(.block(by: user, of: peer), blocked ? "1" : "", by: event)
        return .committed(event)
    }

    private mutating func planRemark(_ user: String, _ peer: String, _ remark: String) -> CommitOutcome {
        if let refusal = checkPeer(user, peer) { return .rejected(refusal) }
        guard remark.utf8.count <= CommitRules.maxRemark else {
            return .rejected(ClientError(.payloadTooLarge, "a remark has at most \(CommitRules.maxRemark) bytes"))
        }
        return .committed(append(audience: [user]) { event in
            event.remarkSet = .with {
                $0.userID = user
                $0.peer = peer
                $0.remark = remark
            }
        })
    }

    // MARK: - Groups

    /// The group exists, is not dissolved, and `user` is a member: their role.
    private func memberRole(_ user: String, _ groupID: String) -> Result<GroupRole, ClientError> {
        guard snapshot.conversations.contains(ConversationID.group(groupID)) else {
            return .failure(ClientError(.unknownConversation, "unknown group \(groupID)"))
        }
        guard let role = role(of: user, in: groupID) else { return .failure(ClientError(.notMember, "not a member of group \(groupID)")) }
        guard !isDissolved(groupID) else { return .failure(ClientError(.groupDissolved, "group \(groupID) was dissolved")) }
        return .success(role)
    }

    private mutating func planUpdateGroup(_ by: String, _ groupID: String, _ field: Parley_GroupField, _ value: String) -> CommitOutcome {
        let actor: GroupRole
        switch memberRole(by, groupID) {
        case .failure(let refusal): return .rejected(refusal)
        case .success(let role): actor = role
        }
        guard let key = field.register(group: groupID) else { return .rejected(ClientError(.invalidRequest, "unknown group field")) }
        let adminOnly = ClientError(.notPermitted, "only the owner and admins change the group's \(key.name)")
        switch field {
        case .groupName:
            guard actor >= .admin else { return .rejected(adminOnly) }
            guard (1...CommitRules.maxGroupName).contains(value.utf8.count) else {
                return .rejected(ClientError(.invalidRequest, "a group name has 1 to \(CommitRules.maxGroupName) bytes"))
            }
        case .groupAnnouncement:
            guard actor >= .admin else { return .rejected(adminOnly) }
            guard value.utf8.count <= CommitRules.maxAnnouncement else {
                return .rejected(ClientError(.payloadTooLarge, "an announcement has at most \(CommitRules.maxAnnouncement) bytes"))
            }
        case .groupJoin, .groupInvite, .groupMuteAll:
            guard actor >= .admin else { return .rejected(adminOnly) }
            let allowed = field == .groupJoin ? ["open", "invite"] : field == .groupInvite ? ["members", "admins"] : ["1", ""]
            guard allowed.contains(value) else {
                return .rejected(ClientError(.invalidRequest, "\(key.name) is one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))"))
            }
        case .groupOwner:
            let current = owner(of: groupID)
            // An admin takes over a group whose owner concurrent decisions left outside it.
            let ownerless = role(of: current, in: groupID) == nil
            guard actor == .owner || (ownerless && actor == .admin) else {
                return .rejected(ClientError(.notPermitted, "only the owner hands the group over"))
            }
            guard value != current else { return .unchanged }
            guard role(of: value, in: groupID) != nil else { return .rejected(ClientError(.notMember, "\(value) is not a member of group \(groupID)")) }
        case .groupDissolved:
            guard actor == .owner else { return .rejected(ClientError(.notPermitted, "only the owner dissolves the group")) }
            guard value == "1" else { return .rejected(ClientError(.invalidRequest, "a dissolved group stays dissolved: the value is \"1\"")) }
        case .unspecified, .UNRECOGNIZED:
            return .rejected(ClientError(.invalidRequest, "unknown group field"))
        }
        guard effectiveSetting(field, of: groupID) != value else { return .unchanged }
        let conversation = ConversationID.group(groupID)
        let event = append(audience: conversationAudience(conversation, including: by)) { event in
            event.groupUpdated = .with {
                $0.groupID = groupID
                $0.by = by
                $0.field = field
                $0.value = value
            }
        }
        wrote(key, value, by: event)
        return .committed(event)
    }

    private mutating func planUpdateMember(
        _ by: String, _ groupID: String, _ member: String, _ field: Parley_MemberField, _ value: String
    ) -> CommitOutcome {
        let actor: GroupRole
        switch memberRole(by, groupID) {
        case .failure(let refusal): return .rejected(refusal)
        case .success(let role): actor = role
        }
        guard let target = role(of: member, in: groupID) else {
            return .rejected(ClientError(.notMember, "\(member) is not a member of group \(groupID)"))
        }
        guard let key = field.register(group: groupID, member: member) else {
            return .rejected(ClientError(.invalidRequest, "unknown member field"))
        }
        switch field {
        case .memberRole:
            guard actor == .owner else { return .rejected(ClientError(.notPermitted, "only the owner sets roles")) }
            guard target != .owner else { return .rejected(ClientError(.notPermitted, "the owner's role changes by handing the group over")) }
            guard value == "admin" || value == "member" else { return .rejected(ClientError(.invalidRequest, "a role is \"admin\" or \"member\"")) }
            guard (target == .admin) != (value == "admin") else { return .unchanged }
        case .memberNickname:
            guard by == member else { return .rejected(ClientError(.notPermitted, "members set their own nickname")) }
            guard value.utf8.count <= CommitRules.maxNickname else {
                return .rejected(ClientError(.payloadTooLarge, "a nickname has at most \(CommitRules.maxNickname) bytes"))
            }
        case .memberMutedUntil:
            guard actor > target else { return .rejected(ClientError(.notPermitted, "the owner mutes admins and members, admins mute members")) }
            guard value.isEmpty || UInt64(value) != nil else {
                return .rejected(ClientError(.invalidRequest, "muted_until is milliseconds since 1970, or empty"))
            }
        case .unspecified, .UNRECOGNIZED:
            return .rejected(ClientError(.invalidRequest, "unknown member field"))
        }
        guard field == .memberRole || register(key) != value else { return .unchanged }
        let event = append(audience: conversationAudience(ConversationID.group(groupID), including: by)) { event in
            event.memberUpdated = .with {
                $0.groupID = groupID
                $0.userID = member
                $0.by = by
                $0.field = field
                $0.value = value
            }
        }
        wrote(key, value, by: event)
        return .committed(event)
    }

    private mutating func planJoin(_ user: String, _ groupID: String) -> CommitOutcome {
        let conversation = ConversationID.group(groupID)
        guard snapshot.conversations.contains(conversation) else { return .rejected(ClientError(.unknownConversation, "unknown group \(groupID)")) }
        guard !isDissolved(groupID) else { return .rejected(ClientError(.groupDissolved, "group \(groupID) was dissolved")) }
        guard register(.joinPolicy(groupID)) == "open" else {
            return .rejected(ClientError(.notPermitted, "group \(groupID) is joined by invitation only"))
        }
        return planMembership(by: user, groupID: groupID, member: user, add: true, joining: true)
    }
}
