import ParleyClient
import ParleyCore
import ParleyProto

/// `parley chat`: a line-oriented client. Lines typed are sent to the peer or
/// group; everything received is printed as it arrives. Three commands:
/// `/push TOKEN` registers this device's push token (empty: none),
/// `/mute` and `/unmute` this conversation's notifications.
public struct Chat: Sendable {
    public let client: ParleyClient
    public let recipient: ParleyClient.Recipient

    public init(client: ParleyClient, recipient: ParleyClient.Recipient) {
        self.client = client
        self.recipient = recipient
    }

    public func run(lines: AsyncStream<String>, print: @escaping @Sendable (String) -> Void) async throws {
        let ok = try await client.connect()
        print("connected as \(ok.userID) in region \(ok.region); type a message and press return, ^D to quit")
        let client = self.client
        let printer = Task {
            for await received in client.events { print(Self.render(received)) }
        }
        defer { printer.cancel() }
        for await line in lines where !line.isEmpty {
            do {
                if line.hasPrefix("/") {
                    try await command(line, print: print)
                    continue
                }
                let ack = try await client.send(to: recipient, body: line)
                print("  (sent \(ack.messageID))")
            } catch {
                print("  ! \(error)")
            }
        }
        await client.disconnect()
    }

    private func command(_ line: String, print: @Sendable (String) -> Void) async throws {
        let words = line.split(separator: " ", maxSplits: 1).map(String.init)
        switch words[0] {
        case "/push":
            _ = try await client.registerPush(token: words.count > 1 ? words[1] : "")
            print(words.count > 1 ? "  (push token registered for this device)" : "  (this device's push token removed)")
        case "/mute", "/unmute":
            let conversation = await conversationID()
            _ = try await client.mute(conversation, words[0] == "/mute")
            print("  (\(words[0].dropFirst())d \(conversation))")
        default:
            print("  ! commands: /push TOKEN, /mute, /unmute")
        }
    }

    private func conversationID() async -> String {
        switch recipient {
        case .group(let group): ConversationID.group(group)
        case .user(let peer): ConversationID.direct(await client.userID ?? "", peer)
        }
    }

    static func render(_ received: ReceivedEvent) -> String {
        let where_ = "[\(received.position.origin)#\(received.position.userSeq)]"
        switch received.event.kind {
        case .messagePosted(let posted) where posted.hidden: return "\(where_) (a duplicate of \(posted.sender)'s \(posted.clientMsgID), not shown)"
        case .messagePosted(let posted) where posted.recalled: return "\(where_) \(posted.sender) in \(posted.conversationID): (recalled)"
        case .messagePosted(let posted):
            let replacing = posted.replaces.isEmpty ? "" : " (in place of \(posted.replaces.joined(separator: ", ")))"
            return "\(where_) \(posted.sender) in \(posted.conversationID): \(posted.body)\(posted.edited ? " (edited)" : "")\(replacing)"
        case .messageEdited(let edit): return "\(where_) \(edit.editor) edited \(edit.messageID): \(edit.body)"
        case .messageRecalled(let recall): return "\(where_) \(recall.by) recalled \(recall.messageID)"
        case .memberAdded(let change): return "\(where_) \(change.by) added \(change.userID) to \(change.groupID)"
        case .memberRemoved(let change): return "\(where_) \(change.by) removed \(change.userID) from \(change.groupID)"
        case .profileSet(let profile): return "\(where_) \(profile.userID) set \(profile.field) to \(profile.value)"
        case .pushRegistered(let push):
            return "\(where_) \(push.deviceID) \(push.token.isEmpty ? "stopped" : "registered for") push notifications"
        case .conversationMuted(let mute):
            let what = mute.conversationID.isEmpty ? "every conversation" : mute.conversationID
            return "\(where_) \(mute.muted ? "muted" : "unmuted") \(what)"
        case .readMoved(let read): return "\(where_) \(read.reader) read \(read.conversationID) up to \(read.messageID)"
        case .groupCreated(let group): return "\(where_) group \(group.groupID) \"\(group.name)\": \(group.members.joined(separator: ", "))"
        case .userRegistered(let user): return "\(where_) \(user.userID) registered"
        case nil: return "\(where_) (unknown event)"
        }
    }
}
