import Foundation
import ParleyClient
import ParleyCore
import ParleyProto

/// `parley chat`: a line-oriented client. Lines typed are sent to the peer or
/// group; everything received is printed as it arrives. Lines starting with
/// `/` are commands (`/help` lists them): push tokens and mutes, friends and
/// blocks, and group administration of the chat's group (README, "Chat from
/// a terminal").
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
        let typist = Task {
            for await notice in client.typingNotices where notice.typing { print("  \(notice.userID) is typing in \(notice.conversationID)…") }
        }
        defer {
            printer.cancel()
            typist.cancel()
        }
        for await line in lines where !line.isEmpty {
            do {
                if line.hasPrefix("/") {
                    try await command(line, print: print)
                    continue
                }
                let ack = try await client.send(to: recipient, body: line)
                print("  (sent \(ack.messageID))")
            } catch is ChatUsage {
                print("  ! commands:\n\(Self.help)")
            } catch {
                print("  ! \(error)")
            }
        }
        await client.disconnect()
    }

    static let help = """
          /reply ID TEXT | /mention USER[,USER...] TEXT | /image URL [CAPTION] | /file URL NAME
          /edit ID TEXT | /recall ID | /delete ID (for me) | /delete-all ID (for everyone) | /read ID | /receipts ID...
          /typing | /pin | /unpin | /conversations | /unread
          /push TOKEN | /mute | /unmute                      notifications of this conversation
          /friends | /friend add USER [GREETING] | /friend accept USER | /friend decline USER | /friend remove USER
          /block USER | /unblock USER | /remark USER [TEXT]
          /group info | /group members [AFTER] | /group join GROUP | /group invite USER | /group kick USER | /group leave
          /group rename NAME | /group announce TEXT | /group open | /group invite-only | /group admins-invite | /group members-invite
          /group mute-all | /group unmute-all | /group admin USER | /group unadmin USER | /group transfer USER
          /group mute USER SECONDS | /group unmute USER | /group nick NAME | /group dissolve
        """

    private func command(_ line: String, print: @Sendable (String) -> Void) async throws {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        func rest(from index: Int) -> String { words.dropFirst(index).joined(separator: " ") }
        func argument(_ index: Int) throws -> String {
            guard words.count > index else { throw ChatUsage() }
            return words[index]
        }
        switch words[0] {
        case "/push":
            _ = try await client.registerPush(token: rest(from: 1))
            print(words.count > 1 ? "  (push token registered for this device)" : "  (this device's push token removed)")
        case "/mute", "/unmute":
            let conversation = await conversationID()
            _ = try await client.mute(conversation, words[0] == "/mute")
            print("  (\(words[0].dropFirst())d \(conversation))")
        case "/reply":
            let ack = try await client.send(to: recipient, body: rest(from: 2), replyTo: try argument(1))
            print("  (sent \(ack.messageID) in reply to \(words[1]))")
        case "/mention":
            let names = try argument(1).split(separator: ",").map(String.init)
            let ack = try await client.send(to: recipient, body: rest(from: 2), mentions: names)
            print("  (sent \(ack.messageID) mentioning \(names.joined(separator: ", ")))")
        case "/image", "/file":
            let url = try argument(1)
            let attachment = Parley_Attachment.with {
                $0.kind = words[0] == "/image" ? .attachmentImage : .attachmentFile
                $0.url = url
                $0.mimeType = words[0] == "/image" ? "image/jpeg" : "application/octet-stream"
                if words[0] == "/file" { $0.name = rest(from: 2) }
            }
            let ack = try await client.send(to: recipient, body: words[0] == "/image" ? rest(from: 2) : "", attachment: attachment)
            print("  (sent \(ack.messageID))")
        case "/edit": acknowledge(try await client.edit(messageID: try argument(1), body: rest(from: 2)), "edited", print)
        case "/recall": acknowledge(try await client.recall(messageID: try argument(1)), "recalled", print)
        case "/delete", "/delete-all":
            acknowledge(try await client.delete(messageID: try argument(1), forEveryone: words[0] == "/delete-all"), "deleted", print)
        case "/read":
            let ack = try await client.markRead(conversationID: await conversationID(), messageID: try argument(1))
            print(ack.hasEvent ? "  (read up to \(words[1]))" : "  (nothing to change)")
        case "/receipts":
            let receipts = try await client.receipts(in: await conversationID(), for: Array(words.dropFirst()))
            for (message, count) in receipts.readBy.sorted(by: { $0.key < $1.key }) { print("  \(message): read by \(count)") }
            for (user, message) in receipts.markers.sorted(by: { $0.key < $1.key }) { print("  \(user) read up to \(message)") }
        case "/typing":
            try await client.typing(in: await conversationID())
            print("  (typing)")
        case "/pin", "/unpin":
            let conversation = await conversationID()
            acknowledge(try await client.pin(conversation, words[0] == "/pin"), "\(words[0].dropFirst())ned \(conversation)", print)
        case "/conversations":
            for summary in try await client.conversations().conversations {
                let preview = summary.lastMessage.messagePosted
                let marks = (summary.pinned ? " [pinned]" : "") + (summary.muted ? " [muted]" : "") + (summary.unread > 0 ? " (\(summary.unread) unread)" : "")
                print("  \(summary.conversationID) \(summary.name)\(marks): \(preview.sender) \(preview.recalled ? "(recalled)" : preview.body)")
            }
        case "/unread":
            let unread = try await client.unread()
            print("  \(unread.total) unread" + unread.byConversation.sorted(by: { $0.key < $1.key }).map { ", \($0.key): \($0.value)" }.joined())
        case "/friends":
            let list = try await client.friends()
            for friend in list.friends {
                let remark = friend.remark.isEmpty ? "" : " (\(friend.remark))"
                let greeting = friend.greeting.isEmpty ? "" : ": \(friend.greeting)"
                print("  \(friend.userID)\(remark) \(Self.describe(friend.status))\(greeting)")
            }
            if !list.blocked.isEmpty { print("  blocked: \(list.blocked.joined(separator: ", "))") }
            if list.friends.isEmpty && list.blocked.isEmpty { print("  (no friends yet)") }
        case "/friend":
            let user = try argument(2)
            switch try argument(1) {
            case "add": acknowledge(try await client.requestFriend(user, greeting: rest(from: 3)), "asked \(user) to be friends", print)
            case "accept": acknowledge(try await client.answerFriendRequest(from: user, accept: true), "friends with \(user)", print)
            case "decline": acknowledge(try await client.answerFriendRequest(from: user, accept: false), "declined \(user)", print)
            case "remove": acknowledge(try await client.removeFriend(user), "no longer friends with \(user)", print)
            default: throw ChatUsage()
            }
        case "/block", "/unblock":
            let user = try argument(1)
            acknowledge(try await client.block(user, words[0] == "/block"), "\(words[0].dropFirst())ed \(user)", print)
        case "/remark":
            let user = try argument(1)
            acknowledge(try await client.setRemark(rest(from: 2), for: user), "remark for \(user) set", print)
        case "/group":
            try await groupCommand(words, rest: rest, argument: argument, print: print)
        default:
            throw ChatUsage()
        }
    }

    private func groupCommand(
        _ words: [String], rest: (Int) -> String, argument: (Int) throws -> String, print: @Sendable (String) -> Void
    ) async throws {
        if try argument(1) == "join" {
            let group = try argument(2)
            acknowledge(try await client.joinGroup(group), "joined \(group)", print)
            return
        }
        guard case .group(let group) = recipient else {
            print("  ! /group commands work in a group chat (parley chat --group ID)")
            return
        }
        switch words[1] {
        case "info":
            let info = try await client.groupInfo(group)
            print("  \(info.groupID) \"\(info.name)\", owner \(info.owner), \(info.memberCount) members, join \(info.join), invite \(info.invite)"
                  + (info.muteAll ? ", muted" : "") + (info.dissolved ? ", dissolved" : ""))
            if !info.announcement.isEmpty { print("  announcement: \(info.announcement)") }
        case "members":
            let page = try await client.members(of: group, after: words.count > 2 ? words[2] : "")
            for member in page.members {
                let nickname = member.nickname.isEmpty ? "" : " \"\(member.nickname)\""
                let muted = member.mutedUntilMs > 0 ? ", muted until \(member.mutedUntilMs)" : ""
                print("  \(member.userID)\(nickname) \(member.role)\(muted)")
            }
            if page.more, let last = page.members.last { print("  (more: /group members \(last.userID))") }
        case "invite": acknowledge(try await client.addMember(try argument(2), to: group), "invited \(words[2])", print)
        case "kick": acknowledge(try await client.removeMember(try argument(2), from: group), "removed \(words[2])", print)
        case "leave": acknowledge(try await client.removeMember(await client.userID ?? "", from: group), "left \(group)", print)
        case "rename": acknowledge(try await client.renameGroup(group, to: rest(2)), "renamed", print)
        case "announce": acknowledge(try await client.setAnnouncement(rest(2), in: group), "announcement set", print)
        case "open", "invite-only":
            acknowledge(try await client.updateGroup(group, .groupJoin, to: words[1] == "open" ? "open" : "invite"), "join policy set", print)
        case "admins-invite", "members-invite":
            acknowledge(try await client.updateGroup(group, .groupInvite, to: words[1] == "admins-invite" ? "admins" : "members"),
                        "invite policy set", print)
        case "mute-all", "unmute-all":
            acknowledge(try await client.updateGroup(group, .groupMuteAll, to: words[1] == "mute-all" ? "1" : ""), "\(words[1]) set", print)
        case "admin", "unadmin":
            acknowledge(try await client.setRole(of: try argument(2), in: group, admin: words[1] == "admin"), "role set", print)
        case "transfer": acknowledge(try await client.transferGroup(group, to: try argument(2)), "handed over to \(words[2])", print)
        case "mute":
            guard let seconds = UInt64(try argument(3)) else { throw ChatUsage() }
            let until = UInt64(Date().timeIntervalSince1970 * 1000) + seconds * 1000
            acknowledge(try await client.muteMember(try argument(2), in: group, untilMilliseconds: until), "muted \(words[2])", print)
        case "unmute": acknowledge(try await client.muteMember(try argument(2), in: group, untilMilliseconds: nil), "unmuted \(words[2])", print)
        case "nick":
            acknowledge(try await client.setNickname(rest(2), in: group, as: await client.userID ?? ""), "nickname set", print)
        case "dissolve": acknowledge(try await client.dissolveGroup(group), "dissolved \(group)", print)
        default: throw ChatUsage()
        }
    }

    private func acknowledge(_ ack: Parley_ChangeAck, _ done: String, _ print: @Sendable (String) -> Void) {
        print(ack.hasEvent ? "  (\(done))" : "  (nothing to change)")
    }

    private static func describe(_ status: Parley_FriendStatus) -> String {
        switch status {
        case .friend: "friend"
        case .friendIncoming: "asks to be friends"
        case .friendOutgoing: "asked by you"
        default: "?"
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
            let reply = posted.replyTo.isEmpty ? "" : " (reply to \(posted.replyTo))"
            let mentions = posted.mentions.isEmpty ? "" : " (mentions \(posted.mentions.joined(separator: ", ")))"
            let attachment = posted.hasAttachment ? " [\(posted.attachment.kind) \(posted.attachment.url)\(posted.attachment.name.isEmpty ? "" : " \(posted.attachment.name)")]" : ""
            return "\(where_) \(posted.sender) in \(posted.conversationID) (\(posted.messageID))\(reply): \(posted.body)\(attachment)"
                + "\(posted.edited ? " (edited)" : "")\(mentions)\(replacing)"
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
        case .friendshipChanged(let change):
            let verb = switch change.action {
            case .friendRequested: "asked \(change.peer) to be friends" + (change.greeting.isEmpty ? "" : ": \(change.greeting)")
            case .friendAccepted: "is now friends with \(change.peer)"
            case .friendDeclined: "declined \(change.peer)'s request"
            default: "is no longer friends with \(change.peer)"
            }
            return "\(where_) \(change.userID) \(verb)"
        case .userBlocked(let block): return "\(where_) \(block.blocked ? "blocked" : "unblocked") \(block.peer)"
        case .remarkSet(let remark): return "\(where_) remark for \(remark.peer): \(remark.remark)"
        case .groupUpdated(let update): return "\(where_) \(update.by) set \(update.groupID)'s \(update.field) to \"\(update.value)\""
        case .conversationPinned(let pin): return "\(where_) \(pin.pinned ? "pinned" : "unpinned") \(pin.conversationID)"
        case .messageDeleted(let deleted): return "\(where_) deleted \(deleted.messageID) on your devices"
        case .tokensRevoked(let revoked):
            return "\(where_) signed out \(revoked.deviceID.isEmpty ? "every device" : revoked.deviceID)"
        case .memberUpdated(let update):
            return "\(where_) \(update.by) set \(update.userID)'s \(update.field) in \(update.groupID) to \"\(update.value)\""
        case nil: return "\(where_) (unknown event)"
        }
    }
}

/// A command line the chat does not understand: answered with the list of commands.
private struct ChatUsage: Error {}
