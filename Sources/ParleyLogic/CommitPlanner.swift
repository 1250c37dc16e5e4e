import ParleyCore
import ParleyProto
import ParleyStore

/// The business rules of every change: turns a batch of commands into events.
/// Checks each against the stored rows (and the batch's own earlier
/// commands): who may post, edit, recall, read, add or remove; unknown users
/// and conversations; group size; retried posts; blocks, roles and group
/// settings (CommitPlanner+Social). Assigns dense `seq` and
/// increasing `hlc`, and names each event's audience (who it concerns, fixed
/// here once for every region: docs/REPLICATION.md). Pure: no I/O; the store
/// reads the rows `keys(for:)` names and writes the events.
struct CommitPlanner: Sendable {
    let origin: String
    var snapshot: CommitSnapshot
    private(set) var nextSeq: UInt64
    private(set) var lastHLC: HLC
    let proposedHLC: HLC
    private let deps: [String: UInt64]
    private let rules: CommitRules
    private(set) var events: [Parley_Event] = []
    private(set) var outcomes: [CommitOutcome] = []

    init(start: CommitStart, snapshot: CommitSnapshot, rules: CommitRules = CommitRules()) {
        self.origin = start.origin
        self.rules = rules
        self.snapshot = snapshot
        self.nextSeq = start.appliedSeq + 1
        self.lastHLC = start.floorHLC
        self.proposedHLC = start.now
        self.deps = start.deps
    }

    /// The stored rows planning `commands` checks.
    static func keys(for commands: [Command]) -> SnapshotKeys {
        var keys = SnapshotKeys()
        for command in commands {
            switch command {
            case .register(let userID):
                keys.users.insert(userID)
            case .post(let post):
                keys.users.insert(post.sender)
                switch post.target {
                case .user(let peer):
                    keys.users.insert(peer)
                    // Whether the peer blocked the sender.
                    keys.subjects.insert(RegisterOwner(conversation: post.conversationID, subject: peer))
                case .group:
                    // The sender's role and mute.
                    keys.subjects.insert(RegisterOwner(conversation: post.conversationID, subject: post.sender))
                }
                keys.conversations.insert(post.conversationID)
                keys.posts.append(PostKey(sender: post.sender, clientMsgID: post.clientMsgID))
                if let replyTo = post.replyTo { keys.messages.insert(replyTo) }
            case .markRead(let reader, let conversationID, let messageID):
                keys.conversations.insert(conversationID)
                keys.messages.insert(messageID)
                keys.readers.append(ReaderKey(conversationID: conversationID, userID: reader))
            case .createGroup(let owner, let groupID, _, let members):
                keys.users.formUnion(members)
                keys.users.insert(owner)
                keys.conversations.insert(ConversationID.group(groupID))
                // Whether a member blocked the creator.
                for member in members where member != owner {
                    keys.subjects.insert(RegisterOwner(conversation: ConversationID.direct(owner, member), subject: member))
                }
            case .edit(_, let messageID, _):
                keys.messages.insert(messageID)
            case .recall(let user, let messageID):
                keys.messages.insert(messageID)
                keys.messageActors.append((messageID, user))
            case .addMember(let by, let groupID, let userID), .removeMember(let by, let groupID, let userID):
                keys.users.insert(userID)
                let conversation = ConversationID.group(groupID)
                keys.conversations.insert(conversation)
                for subject in [by, userID] { keys.subjects.insert(RegisterOwner(conversation: conversation, subject: subject)) }
                keys.subjects.insert(RegisterOwner(conversation: ConversationID.direct(by, userID), subject: userID))
            case .setProfile(let userID, _, _), .registerPush(let userID, _, _):
                // Not checked, but in the audience: the store numbers it from the counter read here.
                keys.users.insert(userID)
            case .mute(let userID, let conversationID, _):
                keys.users.insert(userID)
                if ConversationID.isGroup(conversationID) { keys.conversations.insert(conversationID) }
            case .friendRequest, .friendRespond, .friendRemove, .block, .setRemark, .updateGroup, .updateMember, .joinGroup:
                socialKeys(command, into: &keys)
            case .deleteForMe(_, let messageID):
                keys.messages.insert(messageID)
            case .pin(let userID, let conversationID, _):
                keys.users.insert(userID)
                if ConversationID.isGroup(conversationID) { keys.conversations.insert(conversationID) }
            case .revokeTokens(let userID, _, _):
                keys.users.insert(userID)
            }
        }
        return keys
    }

    /// Plans each command; `traceParents[i]`, when given and not empty,
    /// goes with the events command `i` makes (docs/OPERATIONS.md, "Traces").
    mutating func plan(_ commands: [Command], traceParents: [String] = []) {
        for (index, command) in commands.enumerated() {
            let first = events.count
            outcomes.append(plan(command))
            if index < traceParents.count, !traceParents[index].isEmpty {
                for made in first..<events.count { events[made].traceParent = traceParents[index] }
            }
        }
    }

    private mutating func plan(_ command: Command) -> CommitOutcome {
        switch command {
        case .register(let userID): planRegister(userID)
        case .post(let post): planPost(post)
        case .markRead(let reader, let conversationID, let messageID):
            planMarkRead(reader: reader, conversationID: conversationID, messageID: messageID)
        case .createGroup(let owner, let groupID, let name, let members):
            planCreateGroup(owner: owner, groupID: groupID, name: name, members: members)
        case .edit(let editor, let messageID, let body): planEdit(editor: editor, messageID: messageID, body: body)
        case .recall(let user, let messageID): planRecall(by: user, messageID: messageID)
        case .addMember(let user, let groupID, let member): planMembership(by: user, groupID: groupID, member: member, add: true)
        case .removeMember(let user, let groupID, let member): planMembership(by: user, groupID: groupID, member: member, add: false)
        case .setProfile(let userID, let field, let value): planSetProfile(userID: userID, field: field, value: value)
        case .registerPush(let userID, let deviceID, let token): planRegisterPush(userID: userID, deviceID: deviceID, token: token)
        case .mute(let userID, let conversationID, let muted): planMute(userID: userID, conversationID: conversationID, muted: muted)
        case .friendRequest, .friendRespond, .friendRemove, .block, .setRemark, .updateGroup, .updateMember, .joinGroup:
            planSocial(command)
        case .deleteForMe(let userID, let messageID): planDeleteForMe(userID, messageID)
        case .pin(let userID, let conversationID, let pinned): planPin(userID, conversationID, pinned)
        case .revokeTokens(let userID, let deviceID, let beforeMs):
            // To the user's own devices, whose gates close the connections it revokes.
            .committed(append(audience: [userID]) { event in
                event.tokensRevoked = .with {
                    $0.userID = userID
                    $0.deviceID = deviceID
                    $0.beforeMs = beforeMs
                }
            })
        }
    }

    private mutating func planRegister(_ userID: String) -> CommitOutcome {
        guard !snapshot.knownUsers.contains(userID) else { return .unchanged }
        snapshot.knownUsers.insert(userID)
        return .committed(append(audience: [userID]) { $0.userRegistered = .with { $0.userID = userID } })
    }

    private mutating func planPost(_ post: Post) -> CommitOutcome {
        let key = PostKey(sender: post.sender, clientMsgID: post.clientMsgID)
        if let first = snapshot.storedPosts[key] { return .duplicate(first) }
        let conversationID = post.conversationID
        let audience: [String]
        switch post.target {
        case .user(let peer):
            guard peer != post.sender else { return .rejected(ClientError(.invalidRequest, "cannot message yourself")) }
            guard snapshot.knownUsers.contains(peer) else { return .rejected(ClientError(.unknownUser, "unknown user \(peer)")) }
            guard !blocks(peer, post.sender) else { return .rejected(ClientError(.blocked, "\(peer) blocked you")) }
            // A service's notice concerns its reader only (ServiceAccount).
            audience = [post.sender, peer].filter { !ServiceAccount.isService($0) }
            snapshot.conversations.insert(conversationID)
            snapshot.members[conversationID] = [post.sender, peer]
        case .group(let group):
            guard let members = snapshot.members[conversationID], snapshot.conversations.contains(conversationID) else {
                return .rejected(ClientError(.unknownConversation, "unknown group \(group)"))
            }
            guard members.contains(post.sender) else {
                return .rejected(ClientError(.notMember, "not a member of group \(group)"))
            }
            if let refusal = groupPostRefusal(post.sender, group) { return .rejected(refusal) }
            if let stranger = post.mentions.first(where: { !members.contains($0) }) {
                return .rejected(ClientError(.invalidRequest, "\(stranger) is not a member of group \(group): only members are mentioned"))
            }
            audience = members.sorted()
        }
        if let replyTo = post.replyTo, snapshot.messages[replyTo]?.conversationID != conversationID {
            return .rejected(ClientError(.invalidRequest, "message \(replyTo) is not in \(conversationID)"))
        }
        var messageID = ""
        let event = append(audience: audience) { event in
            messageID = MessageID(origin: event.origin, seq: event.seq).description
            event.messagePosted = .with {
                $0.messageID = messageID
                $0.conversationID = conversationID
                $0.sender = post.sender
                $0.senderDevice = post.senderDevice
                $0.clientMsgID = post.clientMsgID
                $0.body = post.body
                if let attachment = post.attachment { $0.attachment = attachment }
                $0.replyTo = post.replyTo?.description ?? ""
                $0.mentions = post.mentions
            }
        }
        snapshot.storedPosts[key] = event
        snapshot.messages[MessageID(origin: event.origin, seq: event.seq)] = StoredMessage(
            conversationID: conversationID,
            order: ConversationOrder(hlc: HLC(rawValue: event.hlc), origin: event.origin, seq: event.seq),
            sender: post.sender, recalled: false
        )
        return .committed(event)
    }

    private mutating func planMarkRead(reader: String, conversationID: String, messageID: MessageID) -> CommitOutcome {
        guard let members = snapshot.members[conversationID] else {
            return .rejected(ClientError(.unknownConversation, "unknown conversation \(conversationID)"))
        }
        guard members.contains(reader) else {
            return .rejected(ClientError(.notMember, "not a member of \(conversationID)"))
        }
        guard let message = snapshot.messages[messageID], message.conversationID == conversationID else {
            return .rejected(ClientError(.invalidRequest, "message \(messageID) is not in \(conversationID)"))
        }
        let readerKey = ReaderKey(conversationID: conversationID, userID: reader)
        if let current = snapshot.readMarkers[readerKey], current >= message.order { return .unchanged }
        snapshot.readMarkers[readerKey] = message.order
        // A direct conversation's peer sees the receipt; in groups only the reader's devices do.
        let audience = ConversationID.isGroup(conversationID) ? [reader] : members.sorted().filter { !ServiceAccount.isService($0) }
        return .committed(append(audience: audience) { event in
            event.readMoved = .with {
                $0.conversationID = conversationID
                $0.reader = reader
                $0.messageID = messageID.description
            }
        })
    }

    private mutating func planCreateGroup(owner: String, groupID: String, name: String, members: [String]) -> CommitOutcome {
        let everyone = Set(members).union([owner])
        guard everyone.count <= rules.maxGroupMembers else {
            return .rejected(ClientError(.groupFull, "a group has at most \(rules.maxGroupMembers) members"))
        }
        if let unknown = everyone.sorted().first(where: { !snapshot.knownUsers.contains($0) }) {
            return .rejected(ClientError(.unknownUser, "unknown user \(unknown)"))
        }
        if let blocker = members.sorted().first(where: { $0 != owner && blocks($0, owner) }) {
            return .rejected(ClientError(.blocked, "\(blocker) blocked you"))
        }
        let conversationID = ConversationID.group(groupID)
        guard !snapshot.conversations.contains(conversationID) else {
            // The owner's retry of a creation that committed: nothing new.
            if snapshot.owners[conversationID] == owner { return .unchanged }
            return .rejected(ClientError(.invalidRequest, "group \(groupID) exists"))
        }
        snapshot.conversations.insert(conversationID)
        snapshot.owners[conversationID] = owner
        snapshot.members[conversationID] = everyone
        let sorted = everyone.sorted()
        let event = append(audience: sorted) { event in
            event.groupCreated = .with {
                $0.groupID = groupID
                $0.name = name
                $0.owner = owner
                $0.members = sorted
            }
        }
        for member in sorted {
            snapshot.membershipStamps[RegisterOwner(conversation: conversationID, subject: member)] =
                Stamp(hlc: HLC(rawValue: event.hlc), origin: event.origin)
        }
        return .committed(event)
    }

    private mutating func planEdit(editor: String, messageID: MessageID, body: String) -> CommitOutcome {
        guard let message = snapshot.messages[messageID] else {
            return .rejected(ClientError(.invalidRequest, "unknown message \(messageID)"))
        }
        guard message.sender == editor else { return .rejected(ClientError(.notPermitted, "only the sender edits a message")) }
        guard !message.recalled else { return .rejected(ClientError(.invalidRequest, "message \(messageID) was recalled")) }
        let audience = conversationAudience(message.conversationID, including: editor)
        return .committed(append(audience: audience) { event in
            event.messageEdited = .with {
                $0.messageID = messageID.description
                $0.conversationID = message.conversationID
                $0.editor = editor
                $0.body = body
            }
        })
    }

    private mutating func planRecall(by user: String, messageID: MessageID) -> CommitOutcome {
        guard var message = snapshot.messages[messageID] else {
            return .rejected(ClientError(.invalidRequest, "unknown message \(messageID)"))
        }
        let isAdmin = ConversationID.groupID(of: message.conversationID).flatMap { role(of: user, in: $0) }.map { $0 >= .admin } ?? false
        guard message.sender == user || isAdmin else {
            return .rejected(ClientError(.notPermitted, "only the sender or the group's owner and admins recall a message"))
        }
        // The window is measured on the hybrid clocks: the message's stamp against this commit's.
        guard isAdmin || message.order.hlc.milliseconds + rules.recallWindowMs >= proposedHLC.milliseconds else {
            return .rejected(ClientError(.recallWindowPassed, "a message is recalled within \(rules.recallWindowMs / 1000) s of sending"))
        }
        guard !message.recalled else { return .unchanged }
        message.recalled = true
        snapshot.messages[messageID] = message
        let audience = conversationAudience(message.conversationID, including: user)
        return .committed(append(audience: audience) { event in
            event.messageRecalled = .with {
                $0.messageID = messageID.description
                $0.conversationID = message.conversationID
                $0.by = user
            }
        })
    }

    /// Adds (invites) or removes (kicks, or leaves) a member. `joining`: the
    /// member adds themselves to an open group (`planJoin` checked the policy).
    mutating func planMembership(by user: String, groupID: String, member: String, add: Bool, joining: Bool = false) -> CommitOutcome {
        let conversationID = ConversationID.group(groupID)
        guard snapshot.conversations.contains(conversationID) else {
            return .rejected(ClientError(.unknownConversation, "unknown group \(groupID)"))
        }
        let members = snapshot.members[conversationID] ?? []
        guard snapshot.knownUsers.contains(member) else { return .rejected(ClientError(.unknownUser, "unknown user \(member)")) }
        if add {
            guard !members.contains(member) else { return .unchanged }
            if !joining {
                guard let role = role(of: user, in: groupID) else {
                    return .rejected(ClientError(.notMember, "not a member of group \(groupID)"))
                }
                guard !isDissolved(groupID) else { return .rejected(ClientError(.groupDissolved, "group \(groupID) was dissolved")) }
                guard role >= .admin || register(.invitePolicy(groupID)) != "admins" else {
                    return .rejected(ClientError(.notPermitted, "only the owner and admins add members to group \(groupID)"))
                }
                guard !blocks(member, user) else { return .rejected(ClientError(.blocked, "\(member) blocked you")) }
            }
            guard members.count < rules.maxGroupMembers else {
                return .rejected(ClientError(.groupFull, "group \(groupID) has its maximum of \(rules.maxGroupMembers) members"))
            }
        } else {
            guard let actor = role(of: user, in: groupID) else {
                return .rejected(ClientError(.notMember, "not a member of group \(groupID)"))
            }
            guard let target = role(of: member, in: groupID) else { return .unchanged }
            if member == user {
                guard actor != .owner else {
                    return .rejected(ClientError(.notPermitted, "the owner hands the group over or dissolves it before leaving"))
                }
            } else {
                guard actor > target, actor >= .admin else {
                    return .rejected(ClientError(.notPermitted, "the owner removes admins and members, admins remove members"))
                }
            }
        }
        // Everyone who is or was in the group hears of it, the member concerned included.
        let audience = members.union([member]).sorted()
        snapshot.members[conversationID] = add ? members.union([member]) : members.subtracting([member])
        let event = append(audience: audience) { event in
            if add {
                event.memberAdded = .with {
                    $0.groupID = groupID
                    $0.userID = member
                    $0.by = user
                }
            } else {
                event.memberRemoved = .with {
                    $0.groupID = groupID
                    $0.userID = member
                    $0.by = user
                }
            }
        }
        snapshot.membershipStamps[RegisterOwner(conversation: conversationID, subject: member)] =
            Stamp(hlc: HLC(rawValue: event.hlc), origin: event.origin)
        return .committed(event)
    }

    private mutating func planSetProfile(userID: String, field: String, value: String) -> CommitOutcome {
        .committed(append(audience: [userID]) { event in
            event.profileSet = .with {
                $0.userID = userID
                $0.field = field
                $0.value = value
            }
        })
    }

    private mutating func planRegisterPush(userID: String, deviceID: String, token: String) -> CommitOutcome {
        .committed(append(audience: [userID]) { event in
            event.pushRegistered = .with {
                $0.userID = userID
                $0.deviceID = deviceID
                $0.token = token
            }
        })
    }

    /// A user mutes what they are part of: a group they are a member of, a
    /// direct conversation they are one of the two in, or everything ("").
    private mutating func planMute(userID: String, conversationID: String, muted: Bool) -> CommitOutcome {
        if let refusal = conversationRefusal(userID, conversationID) { return .rejected(refusal) }
        return .committed(append(audience: [userID]) { event in
            event.conversationMuted = .with {
                $0.userID = userID
                $0.conversationID = conversationID
                $0.muted = muted
            }
        })
    }

    /// Deletes a message for the user's devices only: a member of its conversation.
    private mutating func planDeleteForMe(_ userID: String, _ messageID: MessageID) -> CommitOutcome {
        guard let message = snapshot.messages[messageID] else {
            return .rejected(ClientError(.invalidRequest, "unknown message \(messageID)"))
        }
        guard snapshot.members[message.conversationID]?.contains(userID) == true else {
            return .rejected(ClientError(.notMember, "not a member of \(message.conversationID)"))
        }
        return .committed(append(audience: [userID]) { event in
            event.messageDeleted = .with {
                $0.userID = userID
                $0.messageID = messageID.description
                $0.conversationID = message.conversationID
            }
        })
    }

    /// Pins what the user is part of, like a mute (but "" is not a conversation here).
    private mutating func planPin(_ userID: String, _ conversationID: String, _ pinned: Bool) -> CommitOutcome {
        if let refusal = conversationRefusal(userID, conversationID) { return .rejected(refusal) }
        return .committed(append(audience: [userID]) { event in
            event.conversationPinned = .with {
                $0.userID = userID
                $0.conversationID = conversationID
                $0.pinned = pinned
            }
        })
    }

    /// Why `userID` may not set something on the conversation: unknown group, not one of its members.
    private func conversationRefusal(_ userID: String, _ conversationID: String) -> ClientError? {
        if let groupID = ConversationID.groupID(of: conversationID) {
            guard snapshot.conversations.contains(conversationID) else { return ClientError(.unknownConversation, "unknown group \(groupID)") }
            guard snapshot.members[conversationID]?.contains(userID) == true else { return ClientError(.notMember, "not a member of group \(groupID)") }
        } else if let (a, b) = ConversationID.directUsers(of: conversationID), a != userID && b != userID {
            return ClientError(.notMember, "not a member of \(conversationID)")
        }
        return nil
    }

    /// A conversation's present members, and `user` (who acted on it).
    func conversationAudience(_ conversationID: String, including user: String) -> [String] {
        (snapshot.members[conversationID] ?? []).union([user]).sorted()
    }

    /// Appends an event with the next seq and hlc. `user_seq`s are filled in
    /// later, once the counters have been incremented.
    mutating func append(audience: [String], _ fill: (inout Parley_Event) -> Void) -> Parley_Event {
        let hlc = max(HLC(rawValue: lastHLC.rawValue + 1), proposedHLC)
        lastHLC = hlc
        var event = Parley_Event()
        event.origin = origin
        event.seq = nextSeq
        event.hlc = hlc.rawValue
        event.deps = deps
        event.audience = audience.map { user in .with { $0.userID = user } }
        nextSeq += 1
        fill(&event)
        events.append(event)
        return event
    }

    /// The outcomes with each event as the store wrote it (user_seqs filled).
    func outcomes(written: [Parley_Event]) -> [CommitOutcome] {
        let bySeq = Dictionary(uniqueKeysWithValues: written.map { ($0.seq, $0) })
        return outcomes.map { outcome in
            switch outcome {
            case .committed(let event): .committed(bySeq[event.seq] ?? event)
            // A retry of a post planned earlier in this same batch.
            case .duplicate(let event) where event.origin == origin: .duplicate(bySeq[event.seq] ?? event)
            default: outcome
            }
        }
    }
}

extension RegionStore {
    /// Plans `commands` against the stored state and commits them in one
    /// transaction; one outcome per command, in order.
    public func commit(_ commands: [Command], rules: CommitRules = CommitRules(), traceParents: [String] = []) async throws -> [CommitOutcome] {
        let (planner, written) = try await commit(reading: CommitPlanner.keys(for: commands)) { snapshot, start in
            var planner = CommitPlanner(start: start, snapshot: snapshot, rules: rules)
            planner.plan(commands, traceParents: traceParents)
            return (planner, planner.events)
        }
        return planner.outcomes(written: written)
    }
}
