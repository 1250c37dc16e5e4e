import Logging
import ParleyCore
import ParleyProto
import ParleyStore
import ParleyWire

/// The core business of a region: each client request arrives already
/// authenticated by a gate and leaves as a response frame. State changes go
/// through the group committer; reads go to the store.
struct RequestHandler: Sendable {
    let region: String
    let store: RegionStore
    let committer: GroupCommitter
    let writer: WriterHandoff
    let geo: GeoDurability
    let defaultDurability: Durability
    let limits: LogicLimits
    let typing: TypingRelay
    let logger: Logger

    /// Starts answering a call. A change (`Parley_Frame.isChange`) is
    /// checked and, before this returns, handed to the origin's writer
    /// (`WriterHandoff`) or queued for this instance's next group commit, so
    /// the calls of one link started one after the other commit in that order
    /// (a connection's pipelined sends); the returned closure waits for the
    /// answer. Anything else is answered entirely by the closure.
    func start(_ call: Parley_ClientCall) -> @Sendable () async -> Parley_Frame {
        let requestID = call.frame.requestID
        let session = VersionVector(call.session)
        do {
            if let change = try plan(call) {
                if case .handedOver(let answer) = writer.route(call) {
                    return { await self.framed(call, requestID) { try await answer.value() } }
                }
                guard needsWait(session) else {
                    let ticket = committer.enqueue(change.command)
                    return { await self.framed(call, requestID) { try await change.answer(try await self.committedHere(call, ticket)) } }
                }
                // The gate sends a call with a session alone (never pipelined), so waiting here keeps the order.
                return {
                    await self.framed(call, requestID) {
                        await self.awaitSession(session)
                        return try await change.answer(try await self.committedHere(call, self.committer.enqueue(change.command)))
                    }
                }
            }
        } catch {
            let answer = framedError(error, call, requestID)
            return { answer }
        }
        return {
            await self.framed(call, requestID) {
                // A sync needs no wait: the device's cursor already covers what it saw.
                switch call.frame.body {
                case .history, .unread, .profileRequest, .friends, .members, .groupInfo, .receipts, .conversations:
                    await self.awaitSession(session)
                default: break
                }
                return try await self.read(call)
            }
        }
    }

    /// The outcome of a change this instance committed; the writer handoff
    /// learns the user has one change fewer in flight here.
    private func committedHere(_ call: Parley_ClientCall, _ ticket: OneShot<CommitOutcome>) async throws -> CommitOutcome {
        defer { writer.committed(userID: call.userID) }
        return try await ticket.value()
    }

    /// Whether the call comes with a session naming other regions' events
    /// (the device wrote or saw them elsewhere before it came here).
    private func needsWait(_ session: VersionVector) -> Bool {
        session.origins.contains { $0 != region }
    }

    /// The session guarantees (docs/REPLICATION.md, "Session guarantees"):
    /// the first change, or history, unread or profile read, of a device that
    /// wrote or saw events this region has not applied yet waits, up to
    /// `limits.sessionWait`, for them to arrive. A change then commits after
    /// them here, and so everywhere (its deps include them); a read sees them.
    /// Past the wait it goes ahead with what the region holds.
    private func awaitSession(_ session: VersionVector) async {
        guard needsWait(session) else { return }
        let deadline = ContinuousClock.now + limits.sessionWait
        while ContinuousClock.now < deadline {
            guard let applied = try? await store.appliedVector() else { return }
            if applied.dominates(session) { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Answers one call; for callers that need no pipelining.
    func respond(to call: Parley_ClientCall) async -> Parley_Frame {
        await start(call)()
    }

    private func framed(_ call: Parley_ClientCall, _ requestID: UInt64, _ answer: () async throws -> Parley_Frame) async -> Parley_Frame {
        do {
            var response = try await answer()
            response.requestID = requestID
            return response
        } catch {
            return framedError(error, call, requestID)
        }
    }

    private func framedError(_ error: any Error, _ call: Parley_ClientCall, _ requestID: UInt64) -> Parley_Frame {
        let refusal = ClientError(converting: error)
        if refusal.detail != nil {
            logger.error("request failed", metadata: ["user": "\(call.userID)", "error": "\(String(reflecting: refusal))"])
        }
        return .error(refusal, requestID: requestID)
    }

    /// A change to commit and how to answer once it has committed.
    private struct Change {
        let command: Command
        let answer: @Sendable (CommitOutcome) async throws -> Parley_Frame
    }

    /// The change a call asks for, checked; nil for a call that changes nothing.
    private func plan(_ call: Parley_ClientCall) throws -> Change? {
        let user = call.userID
        switch call.frame.body {
        case .auth:
            let (device, issuedAt) = (call.deviceID, call.tokenIssuedAtMs)
            return Change(command: .register(userID: user)) { [region, store] outcome in
                _ = try outcome.event()
                // A token revoked since it was issued, for this device or all (docs/PROTOCOL.md, "Sessions and tokens").
                if issuedAt > 0, let settings = try await store.settings(of: [user])[user],
                    UserSetting.isRevoked(issuedAt: issuedAt, device: device, in: settings) {
                    throw ClientError(.tokenRevoked, "this token was revoked; sign in with one issued since")
                }
                return .with {
                    $0.authOk = .with {
                        $0.userID = user
                        $0.region = region
                    }
                }
            }
        case .send(let send):
            return try post(send, from: user, device: call.deviceID)
        case .markRead(let mark):
            let command = Command.markRead(reader: user, conversationID: mark.conversationID, messageID: try messageID(mark.messageID))
            return Change(command: command) { outcome in
                let event = try outcome.event()
                return .with { $0.readAck = .with { $0.event = event.map(\.eventID) ?? Parley_EventId() } }
            }
        case .createGroup(let create):
            return try createGroup(create, owner: user)
        case .edit(let edit):
            try checkBody(edit.body)
            return change(.edit(editor: user, messageID: try messageID(edit.messageID), body: edit.body))
        case .recall(let recall):
            return change(.recall(by: user, messageID: try messageID(recall.messageID)))
        case .addMember(let add):
            return change(.addMember(by: user, groupID: add.groupID, userID: add.userID))
        case .removeMember(let remove):
            return change(.removeMember(by: user, groupID: remove.groupID, userID: remove.userID))
        case .setProfile(let set):
            guard Naming.isValid(set.field) else { throw ClientError(.invalidRequest, "profile field names are 1...64 of [A-Za-z0-9_.]") }
            guard set.value.utf8.count <= limits.maxProfileValueBytes else {
                throw ClientError(.payloadTooLarge, "profile value exceeds \(limits.maxProfileValueBytes) bytes")
            }
            return change(.setProfile(userID: user, field: set.field, value: set.value))
        case .registerPush(let register):
            guard register.token.utf8.count <= limits.maxPushTokenBytes else {
                throw ClientError(.payloadTooLarge, "push token exceeds \(limits.maxPushTokenBytes) bytes")
            }
            return change(.registerPush(userID: user, deviceID: call.deviceID, token: register.token))
        case .mute(let mute):
            let id = mute.conversationID
            guard id.isEmpty || ConversationID.directUsers(of: id) != nil || ConversationID.groupID(of: id)?.isEmpty == false else {
                throw ClientError(.invalidRequest, "not a conversation id: \(id)")
            }
            return change(.mute(userID: user, conversationID: id, muted: mute.muted))
        case .friendRequest(let request):
            return change(.friendRequest(userID: user, peer: request.userID, greeting: request.greeting))
        case .friendRespond(let respond):
            return change(.friendRespond(userID: user, peer: respond.userID, accept: respond.accept))
        case .friendRemove(let remove):
            return change(.friendRemove(userID: user, peer: remove.userID))
        case .block(let block):
            return change(.block(userID: user, peer: block.userID, blocked: block.blocked))
        case .setRemark(let remark):
            return change(.setRemark(userID: user, peer: remark.userID, remark: remark.remark))
        case .updateGroup(let update):
            return change(.updateGroup(by: user, groupID: update.groupID, field: update.field, value: update.value))
        case .updateMember(let update):
            return change(.updateMember(by: user, groupID: update.groupID, member: update.userID, field: update.field, value: update.value))
        case .joinGroup(let join):
            return change(.joinGroup(userID: user, groupID: join.groupID))
        case .delete(let delete):
            let target = try messageID(delete.messageID)
            return change(delete.forEveryone ? .recall(by: user, messageID: target) : .deleteForMe(userID: user, messageID: target))
        case .pin(let pin):
            guard ConversationID.directUsers(of: pin.conversationID) != nil || ConversationID.groupID(of: pin.conversationID)?.isEmpty == false else {
                throw ClientError(.invalidRequest, "not a conversation id: \(pin.conversationID)")
            }
            return change(.pin(userID: user, conversationID: pin.conversationID, pinned: pin.pinned))
        case .revokeTokens(let revoke):
            guard revoke.deviceID.isEmpty || Naming.isValid(revoke.deviceID) else {
                throw ClientError(.invalidRequest, "device ids are 1...64 of [A-Za-z0-9_.]")
            }
            return change(.revokeTokens(userID: user, deviceID: revoke.deviceID, beforeMs: WallClock.milliseconds()))
        default:
            return nil
        }
    }

    /// Calls that change nothing: reads, answered from the store.
    private func read(_ call: Parley_ClientCall) async throws -> Parley_Frame {
        let user = call.userID
        switch call.frame.body {
        case .sync(let request):
            return try await sync(request, for: user)
        case .history(let request):
            let before = request.beforeMessageID.isEmpty ? nil : MessageID(request.beforeMessageID)
            if !request.beforeMessageID.isEmpty && before == nil {
                throw ClientError(.invalidRequest, "not a message id: \(request.beforeMessageID)")
            }
            let conversation = request.conversationID
            try await checkMember(user, conversation)
            guard let page = try await store.history(
                conversationID: conversation, before: before, limit: limits.pageSize(request.limit), reader: user
            )
            else { throw ClientError(.invalidRequest, "message \(request.beforeMessageID) is not in \(conversation)") }
            return .with {
                $0.historyPage = .with {
                    $0.messages = page.messages
                    $0.more = page.more
                }
            }
        case .unread:
            let counts = try await store.unreadCounts(userID: user)
            return .with {
                $0.unreadCounts = .with {
                    $0.byConversation = counts
                    $0.total = counts.values.reduce(0, +)
                }
            }
        case .typing(let notice):
            try await typing.relay(from: user, in: notice.conversationID, typing: notice.typing)
            return .with { $0.changeAck = Parley_ChangeAck() }
        case .receipts(let request):
            try await checkMember(user, request.conversationID)
            guard request.messageIds.count <= 200 else { throw ClientError(.invalidRequest, "at most 200 message ids") }
            let ids = try request.messageIds.map(messageID)
            let receipts = try await store.receipts(conversationID: request.conversationID, messages: ids, reader: user)
            return .with { $0.receiptsAnswer = receipts }
        case .conversations(let request):
            let list = try await store.conversationList(userID: user, limit: limits.pageSize(request.limit == 0 ? 100 : request.limit))
            return .with { $0.conversationList = list }
        case .heartbeat(let beat):
            return .with { $0.heartbeat = beat }
        case .profileRequest(let request):
            guard let fields = try await store.profile(of: request.userID) else {
                throw ClientError(.unknownUser, "unknown user \(request.userID)")
            }
            return .with {
                $0.profile = .with {
                    $0.userID = request.userID
                    $0.fields = fields
                }
            }
        case .friends:
            let list = try await store.friends(of: user)
            return .with { $0.friendList = list }
        case .groupInfo(let request):
            let info = try await groupInfo(request.groupID, for: user)
            return .with { $0.group = info }
        case .members(let request):
            _ = try await groupInfo(request.groupID, for: user)
            let page = try await store.members(
                of: request.groupID, after: request.afterUserID, limit: limits.pageSize(request.limit)
            )
            return .with { $0.memberList = page }
        case .auth, .send, .markRead, .createGroup, .edit, .recall, .addMember, .removeMember, .setProfile, .registerPush, .mute,
            .friendRequest, .friendRespond, .friendRemove, .block, .setRemark, .updateGroup, .updateMember, .joinGroup, .delete, .pin,
            .revokeTokens:
            throw ClientError(.internalError, "a change reached the read path")
        case .authOk, .sendAck, .push, .syncBatch, .readAck, .error, .groupCreated, .historyPage, .unreadCounts,
            .changeAck, .profile, .friendList, .memberList, .group, .receiptsAnswer, .typingNotice, .conversationList, .reauthRequired:
            throw ClientError(.invalidRequest, "a device cannot send this frame type")
        case nil:
            throw ClientError(.unknownFrameType, "frame carries no known body type")
        }
    }

    private func checkMember(_ user: String, _ conversation: String) async throws {
        switch try await store.access(userID: user, conversationID: conversation) {
        case .member: break
        case .notMember: throw ClientError(.notMember, "not a member of \(conversation)")
        case .unknownConversation: throw ClientError(.unknownConversation, "unknown conversation \(conversation)")
        }
    }

    /// A group's settings, for a member, or for anyone when the group is open.
    private func groupInfo(_ groupID: String, for user: String) async throws -> Parley_GroupInfo {
        guard let info = try await store.groupInfo(groupID) else { throw ClientError(.unknownConversation, "unknown group \(groupID)") }
        if info.join != "open", try await store.access(userID: user, conversationID: ConversationID.group(groupID)) != .member {
            throw ClientError(.notMember, "not a member of group \(groupID)")
        }
        return info
    }

    private func messageID(_ text: String) throws -> MessageID {
        guard let id = MessageID(text) else { throw ClientError(.invalidRequest, "not a message id: \(text)") }
        return id
    }

    private func checkBody(_ body: String) throws {
        guard !body.isEmpty else { throw ClientError(.invalidRequest, "empty message body") }
        guard body.utf8.count <= limits.maxBodyBytes else {
            throw ClientError(.payloadTooLarge, "message body exceeds \(limits.maxBodyBytes) bytes")
        }
    }

    /// Media by reference: a kind, an http(s) URL, a MIME type, sizes that fit.
    private func checkAttachment(_ attachment: Parley_Attachment) throws -> Parley_Attachment {
        switch attachment.kind {
        case .attachmentImage, .attachmentFile, .attachmentVoice, .attachmentVideo: break
        case .attachmentNone, .UNRECOGNIZED: throw ClientError(.invalidRequest, "an attachment needs its kind: image, file, voice or video")
        }
        let url = attachment.url
        guard (url.hasPrefix("https://") || url.hasPrefix("http://")), url.utf8.count <= 2048, !url.contains(where: \.isWhitespace) else {
            throw ClientError(.invalidRequest, "an attachment's url is http:// or https://, at most 2 KiB, without spaces")
        }
        let parts = attachment.mimeType.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty }), attachment.mimeType.utf8.count <= 128,
              attachment.mimeType.allSatisfy({ $0.isLetter || $0.isNumber || "/.+-_".contains($0) })
        else { throw ClientError(.invalidRequest, "an attachment's mime_type is type/subtype") }
        guard attachment.name.utf8.count <= 256 else { throw ClientError(.invalidRequest, "an attachment's name has at most 256 bytes") }
        return attachment
    }

    /// A change answered with its event (empty when nothing changed).
    private func change(_ command: Command) -> Change {
        Change(command: command) { outcome in
            let event = try outcome.event()
            return .with {
                $0.changeAck = .with {
                    if let event {
                        $0.event = event.eventID
                        $0.hlc = event.hlc
                    }
                }
            }
        }
    }

    private func post(_ send: Parley_Send, from user: String, device: String) throws -> Change {
        guard !send.clientMsgID.isEmpty, send.clientMsgID.utf8.count <= 128 else {
            throw ClientError(.invalidRequest, "client_msg_id must be 1...128 bytes")
        }
        let attachment = send.hasAttachment ? try checkAttachment(send.attachment) : nil
        if attachment == nil || !send.body.isEmpty { try checkBody(send.body) }
        let target: Post.Target
        switch send.target {
        case .toUser(let peer): target = .user(peer)
        case .groupID(let group): target = .group(group)
        case nil: throw ClientError(.invalidRequest, "send needs to_user or group_id")
        }
        let durability = try durability(of: send)
        let replyTo = send.replyTo.isEmpty ? nil : try messageID(send.replyTo)
        var mentions: [String] = []
        for user in send.mentions where !mentions.contains(user) { mentions.append(user) }
        guard mentions.isEmpty || { if case .group = target { true } else { false } }() else {
            throw ClientError(.invalidRequest, "mentions are for group messages")
        }
        guard mentions.count <= 100 else { throw ClientError(.invalidRequest, "at most 100 mentions") }
        let post = Post(
            sender: user, senderDevice: device, clientMsgID: send.clientMsgID, target: target, body: send.body,
            attachment: attachment, replyTo: replyTo, mentions: mentions
        )
        return Change(command: .post(post)) { [geo] outcome in
            let duplicate: Bool
            if case .duplicate = outcome { duplicate = true } else { duplicate = false }
            guard let event = try outcome.event() else { throw ClientError(.internalError, "post recorded nothing") }
            // A retry waits again: its first attempt may have timed out.
            if durability == .geo { try await geo.confirm(event.eventID) }
            return .with {
                $0.sendAck = .with {
                    $0.clientMsgID = send.clientMsgID
                    $0.messageID = event.messagePosted.messageID
                    $0.event = event.eventID
                    $0.hlc = event.hlc
                    $0.conversationID = event.messagePosted.conversationID
                    $0.duplicate = duplicate
                }
            }
        }
    }

    private func durability(of send: Parley_Send) throws -> Durability {
        switch send.durability {
        case .default: return defaultDurability
        case .local: return .local
        case .geo: return .geo
        case .UNRECOGNIZED(let value): throw ClientError(.invalidRequest, "unknown durability \(value)")
        }
    }

    private func sync(_ request: Parley_SyncRequest, for user: String) async throws -> Parley_Frame {
        var cursor = VersionVector()
        for position in request.cursor { cursor[position.origin] = position.userSeq }
        let page = try await store.sync(userID: user, after: cursor, limit: limits.pageSize(request.limit))
        return .with {
            $0.syncBatch = .with { batch in
                batch.events = page.events.map { entry in .with { $0.position = entry.position; $0.event = entry.event } }
                batch.more = page.more
                batch.cursor = page.cursor.origins.map { origin in
                    .with { $0.origin = origin; $0.userSeq = page.cursor[origin] }
                }
            }
        }
    }

    private func createGroup(_ create: Parley_CreateGroup, owner: String) throws -> Change {
        guard create.name.utf8.count <= 256 else { throw ClientError(.invalidRequest, "group name exceeds 256 bytes") }
        let groupID: String
        if create.clientGroupID.isEmpty {
            groupID = "\(region).\(UInt64.random(in: 1...UInt64.max) >> 1)"
        } else {
            guard Naming.isValid(create.clientGroupID) else { throw ClientError(.invalidRequest, "client_group_id must be 1...64 of [A-Za-z0-9_.]") }
            // The same in every region and on every retry: a retried creation finds the group.
            groupID = Self.groupID(owner: owner, clientGroupID: create.clientGroupID)
        }
        return Change(command: .createGroup(owner: owner, groupID: groupID, name: create.name, members: create.members)) { outcome in
            let event = try outcome.event()
            return .with {
                $0.groupCreated = .with {
                    $0.groupID = groupID
                    if let event { $0.event = event.eventID }
                    $0.duplicate = event == nil
                }
            }
        }
    }

    /// A client-chosen group's id: `<owner>~<client_group_id>` (a region-chosen
    /// one is `<region>.<number>`: the two never meet, `~` being outside names).
    static func groupID(owner: String, clientGroupID: String) -> String {
        "\(owner)~\(clientGroupID)"
    }
}

/// Request limits of a logic instance.
public struct LogicLimits: Sendable {
    public var maxBodyBytes = 16 * 1024
    public var maxGroupMembers = 1000
    /// How long the sender may recall a message (milliseconds).
    public var recallWindowMs: UInt64 = 120_000
    /// A typing notice repeating its state within this is refused.
    public var typingInterval: Duration = .seconds(1)
    public var maxProfileValueBytes = 1024
    /// APNs tokens are 32 bytes in hex, FCM's about 160 characters.
    public var maxPushTokenBytes = 4096
    public var defaultPage = 200
    public var maxPage = 1000
    /// How long a read waits for the region to hold its device's session.
    public var sessionWait: Duration = .seconds(2)

    public init() {}

    func pageSize(_ asked: UInt32) -> Int {
        asked == 0 ? defaultPage : min(Int(asked), maxPage)
    }
}

extension CommitOutcome {
    /// The event this outcome recorded or found, nil when nothing changed; throws a rejection.
    func event() throws -> Parley_Event? {
        switch self {
        case .committed(let event), .duplicate(let event): return event
        case .unchanged: return nil
        case .rejected(let error): throw error
        }
    }
}

extension Parley_Event {
    var eventID: Parley_EventId {
        .with {
            $0.origin = origin
            $0.seq = seq
        }
    }
}
