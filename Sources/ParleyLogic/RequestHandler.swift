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
    let geo: GeoDurability
    let defaultDurability: Durability
    let limits: LogicLimits
    let logger: Logger

    func respond(to request: Parley_ClientCall) async -> Parley_Frame {
        let requestID = request.frame.requestID
        do {
            var response = try await answer(request)
            response.requestID = requestID
            return response
        } catch let error as ClientError {
            return .error(error, requestID: requestID)
        } catch {
            logger.error("request failed", metadata: ["user": "\(request.userID)", "error": "\(String(reflecting: error))"])
            return .error(ClientError(.internalError, "internal error"), requestID: requestID)
        }
    }

    private func answer(_ call: Parley_ClientCall) async throws -> Parley_Frame {
        let user = call.userID
        switch call.frame.body {
        case .auth:
            _ = try await committer.submit(.register(userID: user))
            return .with {
                $0.authOk = .with {
                    $0.userID = user
                    $0.region = region
                }
            }
        case .send(let send):
            return try await post(send, from: user, device: call.deviceID)
        case .sync(let request):
            return try await sync(request, for: user)
        case .markRead(let mark):
            let outcome = try await committer.submit(
                .markRead(reader: user, conversationID: mark.conversationID, messageID: try messageID(mark.messageID))
            )
            let event = try outcome.event()
            return .with { $0.readAck = .with { $0.event = event.map(\.eventID) ?? Parley_EventId() } }
        case .createGroup(let create):
            return try await createGroup(create, owner: user)
        case .history(let request):
            let before = request.beforeMessageID.isEmpty ? nil : MessageID(request.beforeMessageID)
            if !request.beforeMessageID.isEmpty && before == nil {
                throw ClientError(.invalidRequest, "not a message id: \(request.beforeMessageID)")
            }
            let page = try await store.history(
                userID: user, conversationID: request.conversationID, before: before,
                limit: limits.pageSize(request.limit)
            )
            return .with {
                $0.historyPage = .with {
                    $0.messages = page.messages
                    $0.more = page.more
                }
            }
        case .unread:
            let counts = try await store.unreadCounts(userID: user)
            return .with { $0.unreadCounts = .with { $0.byConversation = counts } }
        case .heartbeat(let beat):
            return .with { $0.heartbeat = beat }
        case .edit(let edit):
            try checkBody(edit.body)
            return try await change(.edit(editor: user, messageID: try messageID(edit.messageID), body: edit.body))
        case .recall(let recall):
            return try await change(.recall(by: user, messageID: try messageID(recall.messageID)))
        case .addMember(let add):
            return try await change(.addMember(by: user, groupID: add.groupID, userID: add.userID))
        case .removeMember(let remove):
            return try await change(.removeMember(by: user, groupID: remove.groupID, userID: remove.userID))
        case .setProfile(let set):
            guard Naming.isValid(set.field) else { throw ClientError(.invalidRequest, "profile field names are 1...64 of [A-Za-z0-9_.]") }
            guard set.value.utf8.count <= limits.maxProfileValueBytes else {
                throw ClientError(.payloadTooLarge, "profile value exceeds \(limits.maxProfileValueBytes) bytes")
            }
            return try await change(.setProfile(userID: user, field: set.field, value: set.value))
        case .profileRequest(let request):
            let fields = try await store.profile(of: request.userID)
            return .with {
                $0.profile = .with {
                    $0.userID = request.userID
                    $0.fields = fields
                }
            }
        case .authOk, .sendAck, .push, .syncBatch, .readAck, .error, .groupCreated, .historyPage, .unreadCounts,
            .changeAck, .profile:
            throw ClientError(.invalidRequest, "a device cannot send this frame type")
        case nil:
            throw ClientError(.unknownFrameType, "frame carries no known body type")
        }
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

    /// Records a change and answers with its event (empty when nothing changed).
    private func change(_ command: StoreCommand) async throws -> Parley_Frame {
        let event = try await committer.submit(command).event()
        return .with {
            $0.changeAck = .with {
                if let event {
                    $0.event = event.eventID
                    $0.hlc = event.hlc
                }
            }
        }
    }

    private func post(_ send: Parley_Send, from user: String, device: String) async throws -> Parley_Frame {
        guard !send.clientMsgID.isEmpty, send.clientMsgID.utf8.count <= 128 else {
            throw ClientError(.invalidRequest, "client_msg_id must be 1...128 bytes")
        }
        try checkBody(send.body)
        let target: Post.Target
        switch send.target {
        case .toUser(let peer): target = .user(peer)
        case .groupID(let group): target = .group(group)
        case nil: throw ClientError(.invalidRequest, "send needs to_user or group_id")
        }
        let post = Post(sender: user, senderDevice: device, clientMsgID: send.clientMsgID, target: target, body: send.body)
        let outcome = try await committer.submit(.post(post))
        let duplicate: Bool
        if case .duplicate = outcome { duplicate = true } else { duplicate = false }
        guard let event = try outcome.event() else { throw ClientError(.internalError, "post recorded nothing") }
        // A retry waits again: its first attempt may have timed out.
        if try durability(of: send) == .geo { try await geo.confirm(event.eventID) }
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

    private func createGroup(_ create: Parley_CreateGroup, owner: String) async throws -> Parley_Frame {
        guard create.name.utf8.count <= 256 else { throw ClientError(.invalidRequest, "group name exceeds 256 bytes") }
        let groupID = "\(region).\(UInt64.random(in: 1...UInt64.max) >> 1)"
        let outcome = try await committer.submit(
            .createGroup(owner: owner, groupID: groupID, name: create.name, members: create.members)
        )
        guard let event = try outcome.event() else { throw ClientError(.internalError, "group creation recorded nothing") }
        return .with {
            $0.groupCreated = .with {
                $0.groupID = groupID
                $0.event = event.eventID
            }
        }
    }
}

/// Request limits of a logic instance.
public struct LogicLimits: Sendable {
    public var maxBodyBytes = 16 * 1024
    public var maxGroupMembers = 1000
    public var maxProfileValueBytes = 1024
    public var defaultPage = 200
    public var maxPage = 1000

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
