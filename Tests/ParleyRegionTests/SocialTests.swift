import Foundation
import Synchronization
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Testing

/// The code a request was refused with; nil when it was not refused.
func refusal(_ operation: () async throws -> some Any) async -> ClientErrorCode? {
    do {
        _ = try await operation()
        return nil
    } catch let error as ClientError {
        return error.code
    } catch {
        return ClientErrorCode(rawValue: 0)
    }
}

extension Array where Element == ReceivedEvent {
    func friendshipChanges(_ action: Parley_FriendAction, by user: String) -> Int {
        filter { if case .friendshipChanged(let c) = $0.event.kind { c.action == action && c.userID == user } else { false } }.count
    }

    func groupUpdates(_ field: Parley_GroupField, to value: String) -> Int {
        filter { if case .groupUpdated(let u) = $0.event.kind { u.field == field && u.value == value } else { false } }.count
    }

    var blockEvents: Int { filter { if case .userBlocked = $0.event.kind { true } else { false } }.count }
}

/// Friends, blocks and group administration in one region, through the
/// SDK, with every permission error (docs/PROTOCOL.md, "Friends" and "Groups").
@Suite(.serialized, .timeLimit(.minutes(3))) struct SocialTests {
    @Test func friendsRequestAcceptRemarkBlockAndRemoveWithEveryRefusal() async throws {
        try await LocalRegion.with { region in
            let ann = try await region.connect("ann")
            let annPhone = try await region.connect("ann", device: "phone")
            let bob = try await region.connect("bob")
            let cat = try await region.connect("cat")

            #expect(await refusal { try await ann.client.requestFriend("ann") } == .invalidRequest)
            #expect(await refusal { try await ann.client.requestFriend("nobody") } == .unknownUser)
            #expect(await refusal { try await ann.client.requestFriend("~orders") } == .unknownUser)
            #expect(await refusal { try await ann.client.requestFriend("bob", greeting: String(repeating: "x", count: 2000)) } == .payloadTooLarge)
            #expect(await refusal { try await cat.client.answerFriendRequest(from: "ann", accept: true) } == .noRequest)

            // A request, seen by both users and all their devices, listed both ways.
            let asked = try await ann.client.requestFriend("bob", greeting: "hi, it's ann")
            #expect(asked.hasEvent)
            #expect(try await ann.client.requestFriend("bob", greeting: "hi, it's ann").hasEvent == false, "asking again changes nothing")
            for user in [bob, annPhone] { #expect(await user.inbox.wait { $0.friendshipChanges(.friendRequested, by: "ann") == 1 }) }
            let bobsList = try await bob.client.friends()
            #expect(bobsList.friends.map(\.userID) == ["ann"] && bobsList.friends[0].status == .friendIncoming)
            #expect(bobsList.friends[0].greeting == "hi, it's ann")
            #expect(try await ann.client.friends().friends.map(\.status) == [.friendOutgoing])
            #expect(await refusal { try await ann.client.answerFriendRequest(from: "bob", accept: true) } == .noRequest,
                    "only the one asked answers")

            _ = try await bob.client.answerFriendRequest(from: "ann", accept: true)
            #expect(await annPhone.inbox.wait { $0.friendshipChanges(.friendAccepted, by: "bob") == 1 })
            #expect(try await ann.client.friends().friends.map(\.status) == [.friend])
            #expect(try await bob.client.friends().friends.map(\.status) == [.friend])

            // A remark is private, on every device of its user.
            _ = try await ann.client.setRemark("Bobby", for: "bob")
            #expect(await annPhone.inbox.wait { $0.contains { if case .remarkSet(let r) = $0.event.kind { r.remark == "Bobby" } else { false } } })
            #expect(try await annPhone.client.friends().friends.first?.remark == "Bobby")
            #expect(try await bob.client.friends().friends.first?.remark == "")
            #expect(await refusal { try await ann.client.setRemark("x", for: "nobody") } == .unknownUser)

            // Mutual requests make friends: cat asks bob, bob asks cat back.
            _ = try await cat.client.requestFriend("bob")
            _ = try await bob.client.requestFriend("cat")
            #expect(try await cat.client.friends().friends.map(\.status) == [.friend])

            // bob blocks cat: no message, friend request, group or invitation from cat to bob.
            _ = try await bob.client.block("cat")
            #expect(await refusal { try await cat.client.send(to: .user("bob"), body: "hello?") } == .blocked)
            #expect(await refusal { try await cat.client.requestFriend("bob") } == .blocked)
            #expect(await refusal { try await cat.client.createGroup(name: "c", members: ["bob", "ann"]) } == .blocked)
            let catsGroup = try await cat.client.createGroup(name: "cats", members: ["ann"]).groupID
            #expect(await refusal { try await cat.client.addMember("bob", to: catsGroup) } == .blocked)
            #expect(try await bob.client.friends().blocked == ["cat"])
            #expect(await refusal { try await bob.client.block("nobody") } == .unknownUser)
            // Only the blocker hears of a block: cat received what came after it, and no block.
            _ = try await ann.client.send(to: .user("cat"), body: "after the block")
            #expect(await cat.inbox.wait { $0.containsMessage("after the block") })
            #expect(await cat.inbox.received.blockEvents == 0)
            #expect(await bob.inbox.wait { $0.blockEvents == 1 })
            // bob still sends to cat; unblocked, cat sends to bob again.
            _ = try await bob.client.send(to: .user("cat"), body: "bob may still write")
            _ = try await bob.client.block("cat", false)
            _ = try await cat.client.send(to: .user("bob"), body: "unblocked")
            #expect(await bob.inbox.wait { $0.containsMessage("unblocked") })

            // Removing ends the friendship for both; a request can be withdrawn.
            _ = try await ann.client.removeFriend("bob")
            #expect(try await bob.client.friends().friends.map(\.userID) == ["cat"])
            _ = try await ann.client.requestFriend("cat")
            _ = try await ann.client.removeFriend("cat")
            #expect(try await cat.client.friends().friends.map(\.userID) == ["bob"])
            #expect(try await ann.client.removeFriend("cat").hasEvent == false)

            // A new device syncs the same friendships from the log.
            let bobTablet = try await region.connect("bob", device: "tablet")
            #expect(await bobTablet.inbox.wait { $0.friendshipChanges(.friendRemoved, by: "ann") == 1 && $0.blockEvents == 2 })
            for user in [ann, annPhone, bob, cat, bobTablet] { await user.stop() }
        }
    }

    @Test func groupsRolesSettingsMutesJoinTransferAndDissolveWithEveryRefusal() async throws {
        try await LocalRegion.with(logicArguments: ["--max-group-members=5"]) { region in
            let ann = try await region.connect("ann")
            let bob = try await region.connect("bob")
            let cat = try await region.connect("cat")
            let dan = try await region.connect("dan")
            let eve = try await region.connect("eve")
            let fay = try await region.connect("fay")
            let group = try await ann.client.createGroup(name: "crew", members: ["bob", "cat"]).groupID

            // A setting set to what it already is changes nothing, defaults included.
            #expect(try await ann.client.renameGroup(group, to: "crew").hasEvent == false)
            #expect(try await ann.client.updateGroup(group, .groupJoin, to: "invite").hasEvent == false)
            #expect(try await ann.client.updateGroup(group, .groupInvite, to: "members").hasEvent == false)
            // Settings: the owner and admins only.
            #expect(await refusal { try await bob.client.renameGroup(group, to: "bob's") } == .notPermitted)
            #expect(await refusal { try await bob.client.setRole(of: "cat", in: group, admin: true) } == .notPermitted)
            #expect(await refusal { try await dan.client.renameGroup(group, to: "x") } == .notMember)
            #expect(await refusal { try await ann.client.renameGroup("nope", to: "x") } == .unknownConversation)
            #expect(await refusal { try await ann.client.renameGroup(group, to: "") } == .invalidRequest)
            #expect(await refusal { try await ann.client.updateGroup(group, .groupJoin, to: "sometimes") } == .invalidRequest)
            #expect(await refusal { try await ann.client.setRole(of: "ann", in: group, admin: false) } == .notPermitted)
            #expect(await refusal { try await ann.client.setRole(of: "dan", in: group, admin: true) } == .notMember)
            _ = try await ann.client.setRole(of: "bob", in: group, admin: true)
            _ = try await bob.client.renameGroup(group, to: "the crew")
            _ = try await bob.client.setAnnouncement("meet at 9", in: group)
            #expect(await refusal { try await cat.client.setAnnouncement("no", in: group) } == .notPermitted)
            for user in [ann, cat] { #expect(await user.inbox.wait { $0.groupUpdates(.groupName, to: "the crew") == 1 }) }
            var info = try await cat.client.groupInfo(group)
            #expect(info.name == "the crew" && info.announcement == "meet at 9" && info.owner == "ann" && info.memberCount == 3)
            #expect(info.join == "invite" && info.invite == "members" && !info.muteAll && !info.dissolved)
            #expect(await refusal { try await dan.client.groupInfo(group) } == .notMember, "an invite-only group is private")

            // Invitations: members invite unless the group says admins; admins remove members, not the owner.
            _ = try await ann.client.updateGroup(group, .groupInvite, to: "admins")
            #expect(await refusal { try await cat.client.addMember("dan", to: group) } == .notPermitted)
            _ = try await bob.client.addMember("dan", to: group)
            #expect(await refusal { try await cat.client.removeMember("dan", from: group) } == .notPermitted)
            #expect(await refusal { try await bob.client.removeMember("ann", from: group) } == .notPermitted)
            _ = try await bob.client.removeMember("dan", from: group)
            #expect(await refusal { try await ann.client.removeMember("ann", from: group) } == .notPermitted, "the owner hands over first")

            // Mutes: one member for a while, or everyone but the owner and admins.
            let inAMinute = UInt64(Date().timeIntervalSince1970 * 1000) + 60_000
            #expect(await refusal { try await cat.client.muteMember("bob", in: group, untilMilliseconds: inAMinute) } == .notPermitted)
            #expect(await refusal { try await bob.client.muteMember("ann", in: group, untilMilliseconds: inAMinute) } == .notPermitted)
            _ = try await bob.client.muteMember("cat", in: group, untilMilliseconds: inAMinute)
            #expect(await refusal { try await cat.client.send(to: .group(group), body: "muted?") } == .muted)
            _ = try await bob.client.muteMember("cat", in: group, untilMilliseconds: nil)
            _ = try await cat.client.send(to: .group(group), body: "unmuted")
            _ = try await ann.client.updateGroup(group, .groupMuteAll, to: "1")
            #expect(await refusal { try await cat.client.send(to: .group(group), body: "all muted?") } == .muted)
            _ = try await bob.client.send(to: .group(group), body: "admins still speak")
            _ = try await ann.client.updateGroup(group, .groupMuteAll, to: "")
            // A mute that has passed no longer counts.
            _ = try await bob.client.muteMember("cat", in: group, untilMilliseconds: 1_000)
            _ = try await cat.client.send(to: .group(group), body: "an old mute")

            // Nicknames are each member's own; the member list pages and shows roles.
            _ = try await cat.client.setNickname("kitty", in: group, as: "cat")
            #expect(await refusal { try await cat.client.setNickname("bobby", in: group, as: "bob") } == .notPermitted)
            let first = try await cat.client.members(of: group, limit: 2)
            #expect(first.members.map(\.userID) == ["ann", "bob"] && first.more)
            #expect(first.members.map(\.role) == ["owner", "admin"])
            let second = try await cat.client.members(of: group, after: "bob", limit: 2)
            #expect(second.members.map(\.userID) == ["cat"] && !second.more)
            #expect(second.members.first?.nickname == "kitty" && second.members.first?.role == "member")

            // Joining: by invitation only until the group opens; the size limit holds there too.
            #expect(await refusal { try await dan.client.joinGroup(group) } == .notPermitted)
            #expect(await refusal { try await dan.client.joinGroup("nope") } == .unknownConversation)
            _ = try await ann.client.updateGroup(group, .groupJoin, to: "open")
            #expect(try await dan.client.groupInfo(group).join == "open", "an open group shows itself")
            _ = try await dan.client.joinGroup(group)
            _ = try await eve.client.joinGroup(group)
            #expect(await refusal { try await fay.client.joinGroup(group) } == .groupFull)
            #expect(await ann.inbox.wait { events in
                events.contains { if case .memberAdded(let a) = $0.event.kind { a.userID == "eve" && a.by == "eve" } else { false } }
            })

            // A member removed and added again comes back a plain member.
            _ = try await ann.client.setRole(of: "dan", in: group, admin: true)
            _ = try await ann.client.removeMember("dan", from: group)
            _ = try await ann.client.addMember("dan", to: group)
            #expect(try await ann.client.members(of: group).members.first { $0.userID == "dan" }?.role == "member")

            // Handing over: the new owner rules, the old one may leave.
            #expect(await refusal { try await bob.client.transferGroup(group, to: "cat") } == .notPermitted)
            #expect(await refusal { try await ann.client.transferGroup(group, to: "fay") } == .notMember)
            _ = try await ann.client.transferGroup(group, to: "bob")
            info = try await ann.client.groupInfo(group)
            #expect(info.owner == "bob")
            #expect(await refusal { try await ann.client.renameGroup(group, to: "mine again") } == .notPermitted)
            _ = try await ann.client.removeMember("ann", from: group)
            #expect(await refusal { try await ann.client.send(to: .group(group), body: "gone") } == .notMember)

            // Dissolving: the owner only; then nothing more is said or changed, history stays.
            #expect(await refusal { try await cat.client.dissolveGroup(group) } == .notPermitted)
            _ = try await bob.client.dissolveGroup(group)
            #expect(await cat.inbox.wait { $0.groupUpdates(.groupDissolved, to: "1") == 1 })
            #expect(await refusal { try await cat.client.send(to: .group(group), body: "anyone?") } == .groupDissolved)
            #expect(await refusal { try await bob.client.renameGroup(group, to: "revived") } == .groupDissolved)
            #expect(await refusal { try await bob.client.addMember("fay", to: group) } == .groupDissolved)
            #expect(try await cat.client.groupInfo(group).dissolved)
            let page = try await cat.client.history(conversationID: ConversationID.group(group))
            #expect(page.messages.map(\.messagePosted.body).contains("admins still speak"))
            for user in [ann, bob, cat, dan, eve, fay] { await user.stop() }
        }
    }

    /// Message features in one region through the SDK: media by reference,
    /// replies, mentions, the recall window, edits, deletion for one user and
    /// for everyone, receipts, typing, unread totals and the conversation list.
    @Test func messageFeaturesWithEveryRefusal() async throws {
        // A window long enough for a quick recall on a loaded machine; a typing interval no test outlasts.
        try await LocalRegion.with(logicArguments: ["--recall-window-ms=3000", "--typing-interval-ms=60000"]) { region in
            let ann = try await region.connect("ann")
            let bob = try await region.connect("bob")
            let cat = try await region.connect("cat")
            let catPhone = try await region.connect("cat", device: "phone")
            let dan = try await region.connect("dan")
            let group = try await ann.client.createGroup(name: "media", members: ["bob", "cat"]).groupID
            let conversation = ConversationID.group(group)

            // Media by reference: the body is an optional caption.
            let photo = Parley_Attachment.with {
                $0.kind = .attachmentImage
                $0.url = "https://cdn.example/p/1.jpg"
                $0.size = 123_456
                $0.mimeType = "image/jpeg"
                $0.width = 800
                $0.height = 600
            }
            let sent = try await ann.client.send(to: .group(group), body: "", attachment: photo)
            #expect(await bob.inbox.wait { $0.contains { $0.event.messagePosted.attachment == photo } })
            var bad = photo
            bad.url = "ftp://cdn.example/p/1.jpg"
            #expect(await refusal { try await ann.client.send(to: .group(group), body: "", attachment: bad) } == .invalidRequest)
            bad = photo
            bad.mimeType = "jpeg"
            #expect(await refusal { try await ann.client.send(to: .group(group), body: "", attachment: bad) } == .invalidRequest)
            bad = photo
            bad.kind = .attachmentNone
            #expect(await refusal { try await ann.client.send(to: .group(group), body: "x", attachment: bad) } == .invalidRequest)
            #expect(await refusal { try await ann.client.send(to: .group(group), body: "") } == .invalidRequest)

            // Replies and mentions.
            let reply = try await cat.client.send(to: .group(group), body: "nice photo", replyTo: sent.messageID, mentions: ["ann"])
            #expect(await bob.inbox.wait { events in
                events.contains { $0.event.messagePosted.replyTo == sent.messageID && $0.event.messagePosted.mentions == ["ann"] }
            })
            let elsewhere = try await ann.client.send(to: .user("bob"), body: "private")
            #expect(await refusal { try await cat.client.send(to: .group(group), body: "?", replyTo: elsewhere.messageID) } == .invalidRequest)
            #expect(await refusal { try await cat.client.send(to: .group(group), body: "?", replyTo: "nonsense") } == .invalidRequest)
            #expect(await refusal { try await cat.client.send(to: .group(group), body: "@dan", mentions: ["dan"]) } == .invalidRequest)
            #expect(await refusal { try await ann.client.send(to: .user("bob"), body: "@bob", mentions: ["bob"]) } == .invalidRequest)
            let history = try await bob.client.history(conversationID: conversation)
            #expect(history.messages.first?.messagePosted.replyTo == sent.messageID)
            #expect(history.messages.last?.messagePosted.attachment == photo)

            // Edits; recall within the window by the sender, at any time by the owner.
            _ = try await cat.client.edit(messageID: reply.messageID, body: "very nice photo")
            let quick = try await bob.client.send(to: .group(group), body: "oops")
            _ = try await bob.client.recall(messageID: quick.messageID)
            let slow = try await bob.client.send(to: .group(group), body: "too late to take back")
            try await Task.sleep(for: .milliseconds(3_500))  // the window itself is what is tested
            #expect(await refusal { try await bob.client.recall(messageID: slow.messageID) } == .recallWindowPassed)
            #expect(await refusal { try await bob.client.delete(messageID: slow.messageID, forEveryone: true) } == .recallWindowPassed)
            _ = try await ann.client.delete(messageID: slow.messageID, forEveryone: true)
            let afterRecall = try await cat.client.history(conversationID: conversation).messages
            #expect(afterRecall.first { $0.messagePosted.messageID == slow.messageID }?.messagePosted.recalled == true)
            #expect(afterRecall.first { $0.messagePosted.messageID == reply.messageID }?.messagePosted.edited == true)

            // Delete for me: gone from this user's history and unread on every device, kept for the others.
            let noise = try await bob.client.send(to: .group(group), body: "noise")
            let unreadBefore = try await cat.client.unread()
            #expect(unreadBefore.total == unreadBefore.byConversation.values.reduce(0, +) && unreadBefore.byConversation[conversation] != nil)
            _ = try await cat.client.delete(messageID: noise.messageID)
            #expect(await catPhone.inbox.wait { $0.contains { $0.event.messageDeleted.messageID == noise.messageID } })
            #expect(!(try await catPhone.client.history(conversationID: conversation).messages.contains { $0.messagePosted.messageID == noise.messageID }))
            #expect(try await bob.client.history(conversationID: conversation).messages.contains { $0.messagePosted.messageID == noise.messageID })
            #expect(try await catPhone.client.unread().byConversation[conversation] == (unreadBefore.byConversation[conversation] ?? 0) - 1)
            #expect(await refusal { try await dan.client.delete(messageID: noise.messageID) } == .notMember)

            // Receipts: read counts in a group, the other's marker in a direct conversation.
            _ = try await bob.client.markRead(conversationID: conversation, messageID: noise.messageID)
            _ = try await cat.client.markRead(conversationID: conversation, messageID: reply.messageID)
            let counts = try await ann.client.receipts(in: conversation, for: [sent.messageID, noise.messageID])
            // ann's photo: read by bob and cat; bob's noise: not by its sender, nor by cat (her marker is before it).
            #expect(counts.readBy[sent.messageID] == 2 && counts.readBy[noise.messageID] == 0, "\(counts)")
            _ = try await ann.client.markRead(conversationID: conversation, messageID: noise.messageID)
            #expect(try await bob.client.receipts(in: conversation, for: [noise.messageID]).readBy[noise.messageID] == 1)
            _ = try await bob.client.markRead(conversationID: ConversationID.direct("ann", "bob"), messageID: elsewhere.messageID)
            let direct = try await ann.client.receipts(in: ConversationID.direct("ann", "bob"), for: [elsewhere.messageID])
            #expect(direct.markers["bob"] == elsewhere.messageID && direct.readBy[elsewhere.messageID] == 1)
            #expect(await refusal { try await dan.client.receipts(in: conversation, for: []) } == .notMember)

            // Typing: pushed to the others, never stored, one per interval per state.
            let eventsBefore = try region.postgres.psql("SELECT count(*) FROM events")
            try await cat.client.typing(in: conversation)
            var typists = ann.client.typingNotices.makeAsyncIterator()
            let notice = await typists.next()
            #expect(notice?.userID == "cat" && notice?.typing == true && notice?.conversationID == conversation)
            #expect(await refusal { try await cat.client.typing(in: conversation) } == .rateLimited)
            try await cat.client.typing(in: conversation, false)
            #expect(await refusal { try await dan.client.typing(in: conversation) } == .notMember)
            #expect(try region.postgres.psql("SELECT count(*) FROM events") == eventsBefore, "typing is not an event")

            // The conversation list: pinned first, then newest; previews, unread, mutes.
            _ = try await ann.client.mute(conversation)
            var list = try await ann.client.conversations().conversations
            #expect(list.map(\.conversationID) == [conversation, ConversationID.direct("ann", "bob")], "\(list.map(\.conversationID))")
            #expect(list[0].name == "media" && list[0].muted && list[0].lastMessage.messagePosted.messageID == noise.messageID)
            #expect(list[1].name == "bob" && list[1].lastMessage.messagePosted.body == "private")
            _ = try await ann.client.pin(ConversationID.direct("ann", "bob"))
            list = try await ann.client.conversations().conversations
            #expect(list.map(\.conversationID) == [ConversationID.direct("ann", "bob"), conversation] && list[0].pinned)
            #expect(list[1].unread == (try await ann.client.unread().byConversation[conversation] ?? 0))
            #expect(await refusal { try await dan.client.pin(conversation) } == .notMember)
            for user in [ann, bob, cat, catPhone, dan] { await user.stop() }
        }
    }

    /// `parley chat`'s commands drive the same features from a terminal.
    @Test func chatCommandsCoverFriendsAndGroupAdministration() async throws {
        try await LocalRegion.with { region in
            let bob = try await region.connect("bob")
            let cat = try await region.connect("cat")
            let group = try await bob.client.createGroup(name: "terminal", members: ["cat"]).groupID
            let configuration = ParleyClient.Configuration(gates: [region.address(.tcp)], token: try await region.token(for: "ann"), deviceID: "tty")
            let lines = [
                "/friend add bob hello from the terminal", "/friends", "/remark bob B.", "/friends", "/block cat", "/friends",
                "/group info", "/frobnicate", "/image https://example.com/a.jpg a caption", "/typing", "/pin", "/conversations", "/unread",
            ]
            let printed = Printed()
            let first = ParleyClient(configuration: configuration)
            _ = try await first.connect()  // ann signs in once: a user bob can ask
            await first.disconnect()
            _ = try await bob.client.requestFriend("ann", greeting: "from bob")
            try await Chat(client: ParleyClient(configuration: configuration), recipient: .user("bob"))
                .run(lines: AsyncStream { for line in lines { $0.yield(line) }; $0.finish() }, print: { printed.append($0) })
            var output = printed.text
            #expect(output.contains("(asked bob to be friends)"), "\(output)")
            #expect(output.contains("bob friend"), "bob asked first, so they are friends: \(output)")
            #expect(output.contains("bob (B.) friend"), "\(output)")
            #expect(output.contains("blocked: cat"), "\(output)")
            #expect(output.contains("/group commands work in a group chat"), "\(output)")
            #expect(output.contains("! commands:") && output.contains("/group transfer USER"), "an unknown command lists them: \(output)")
            #expect(output.contains("(typing)") && output.contains("(pinned d:ann:bob)"), "\(output)")
            #expect(output.contains("d:ann:bob bob [pinned]: ann a caption"), "the photo is the newest message: \(output)")
            #expect(output.contains(" unread"), "\(output)")

            // In a group chat, as its owner.
            let bobsConfiguration = ParleyClient.Configuration(gates: [region.address(.tcp)], token: try await region.token(for: "bob"), deviceID: "tty")
            let groupLines = [
                "/group rename renamed from a terminal", "/group announce hello all", "/group admin cat", "/group members",
                "/group mute-all", "/group open", "/group info", "/group kick nobody", "/group transfer cat", "/group leave",
            ]
            let groupPrinted = Printed()
            try await Chat(client: ParleyClient(configuration: bobsConfiguration), recipient: .group(group))
                .run(lines: AsyncStream { for line in groupLines { $0.yield(line) }; $0.finish() }, print: { groupPrinted.append($0) })
            output = groupPrinted.text
            #expect(output.contains("cat admin") && output.contains("bob owner"), "\(output)")
            #expect(output.contains("\"renamed from a terminal\", owner bob, 2 members, join open, invite members, muted"), "\(output)")
            #expect(output.contains("announcement: hello all"), "\(output)")
            #expect(output.contains("unknown_user") || output.contains("unknown user nobody"), "\(output)")
            #expect(output.contains("(handed over to cat)") && output.contains("(left \(group))"), "\(output)")
            let info = try await cat.client.groupInfo(group)
            #expect(info.owner == "cat" && info.memberCount == 1 && info.muteAll && info.join == "open")
            for user in [bob, cat] { await user.stop() }
        }
    }
}

/// What a chat printed, line by line.
final class Printed: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}
