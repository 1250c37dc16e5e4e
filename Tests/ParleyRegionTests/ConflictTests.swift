import Foundation
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Testing

/// Conflicting writes made in different regions while they could not see
/// each other (every sync stopped), then healed: each resolves by the rule
/// docs/REPLICATION.md gives, identically in every region.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ConflictTests {
    private func converged(_ cluster: LocalCluster) async throws -> Bool {
        try await eventually {
            let vectors = try cluster.regions.map { try $0.appliedVector }
            return Set(vectors).count == 1
        }
    }

    private func partition(_ cluster: LocalCluster) async {
        for region in cluster.regions { await region.stopSync() }
    }

    private func heal(_ cluster: LocalCluster) async throws {
        for region in cluster.regions { try await region.startSync() }
    }

    @Test func partitionedWritesResolveByTheDocumentedRulesEverywhere() async throws {
        try await LocalCluster.with { cluster in
            let annEU = try await cluster["eu"].connect("ann")
            let annUS = try await cluster["us"].connect("ann", device: "d2")
            let bob = try await cluster["us"].connect("bob")
            let cat = try await cluster["ap"].connect("cat")
            let dan = try await cluster["ap"].connect("dan")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "4" } },
                    "\(cluster.syncLogs)")
            let group = try await annEU.client.createGroup(name: "crew", members: ["bob", "cat", "dan"]).groupID
            let conversation = ConversationID.group(group)
            #expect(try await converged(cluster), "\(cluster.syncLogs)")
            let annsMessage = try await annEU.client.send(to: .group(group), body: "original").messageID
            let bobsMessage = try await bob.client.send(to: .group(group), body: "soon recalled").messageID
            #expect(try await converged(cluster), "\(cluster.syncLogs)")

            await partition(cluster)
            // Each pair below is written first in one region, then in another:
            // the second write has the later hlc.
            // 1. One client_msg_id accepted twice (a device retrying in another region): the lower (hlc, origin) wins.
            _ = try await annEU.client.send(to: .group(group), body: "retried, kept", clientMsgID: "retry-1")
            _ = try await annUS.client.send(to: .group(group), body: "retried, hidden", clientMsgID: "retry-1")
            // 2. Concurrent edits: the later (hlc, origin) wins.
            _ = try await annEU.client.edit(messageID: annsMessage, body: "edited in eu")
            _ = try await annUS.client.edit(messageID: annsMessage, body: "edited in us, wins")
            // 3. Concurrent membership: last writer wins per (group, member).
            //    dan: removed and re-added in eu, then removed in us → absent.
            _ = try await annEU.client.removeMember("dan", from: group)
            _ = try await annEU.client.addMember("dan", to: group)
            _ = try await annUS.client.removeMember("dan", from: group)
            //    cat: removed in us, then removed and re-added in eu → present.
            _ = try await annUS.client.removeMember("cat", from: group)
            _ = try await annEU.client.removeMember("cat", from: group)
            _ = try await annEU.client.addMember("cat", to: group)
            // 4. A recall racing a read: the tombstone wins, the read marker still counts.
            _ = try await bob.client.recall(messageID: bobsMessage)
            _ = try await cat.client.markRead(conversationID: conversation, messageID: bobsMessage)
            // 5. Profile fields: the later write wins.
            _ = try await annUS.client.setProfile("display_name", to: "Ann (us)")
            _ = try await annEU.client.setProfile("display_name", to: "Ann (eu), wins")
            try await heal(cluster)

            #expect(try await converged(cluster), "\(cluster.syncLogs)")
            let digests = try cluster.regions.map { try $0.stateDigest }
            #expect(Set(digests).count == 1, "the same state everywhere:\n\(digests.joined(separator: "\n"))")
            for region in cluster.regions {
                let members = try region.postgres.psql(
                    "SELECT string_agg(user_id, ',' ORDER BY user_id) FROM members WHERE conversation_id = '\(conversation)' AND present"
                )
                #expect(members == "ann,bob,cat", "\(region.name): \(members)")
                #expect(try region.postgres.psql("SELECT body FROM messages WHERE origin || '-' || seq = '\(annsMessage)'") == "edited in us, wins")
                #expect(try region.postgres.psql("SELECT recalled::text || '|' || body FROM messages WHERE origin || '-' || seq = '\(bobsMessage)'") == "true|")
                #expect(try region.postgres.psql("SELECT origin || '-' || seq FROM read_markers WHERE user_id = 'cat'") == bobsMessage)
                #expect(try region.postgres.psql("SELECT value FROM profiles WHERE user_id = 'ann'") == "Ann (eu), wins")
            }

            // What devices see, asked of every region: one copy of the retried
            // message, the winning edit, the tombstone, the winning profile.
            for user in [annEU, annUS, bob, cat] {
                let page = try await user.client.history(conversationID: conversation)
                let bodies = page.messages.map(\.messagePosted.body)
                #expect(bodies.filter { $0.hasPrefix("retried") } == ["retried, kept"], "\(bodies)")
                #expect(bodies.contains("edited in us, wins"))
                let recalled = page.messages.first { $0.messagePosted.messageID == bobsMessage }?.messagePosted
                #expect(recalled?.recalled == true && recalled?.body == "")
                #expect(try await user.client.profile(of: "ann")["display_name"] == "Ann (eu), wins")
            }
            // What devices show, from what they were pushed live and synced:
            // every device received both copies of the retried send, and
            // shows one, the winner, in every region.
            for user in [annEU, annUS, bob, cat] {
                let both = await user.inbox.wait { events in
                    events.filter { $0.event.messagePosted.clientMsgID == "retry-1" }.count == 2
                }
                #expect(both, "\(user.id) received both copies")
                let shown = await user.inbox.received.shownBodies.filter { $0.hasPrefix("retried") }
                #expect(shown == ["retried, kept"], "\(user.id) shows \(shown)")
            }
            // cat's unread count no longer counts the recalled message.
            let unread = try await cat.client.unreadCounts()[conversation] ?? 0
            #expect(unread == 1, "only the kept retry is after what cat read: \(unread)")
            for user in [annEU, annUS, bob, cat, dan] { await user.stop() }
        }
    }

    /// Friends, blocks and group administration decided concurrently in
    /// partitioned regions: each pair resolves by its register's rule
    /// (docs/REPLICATION.md, "Registers"), identically everywhere, and
    /// `parley check` finds the regions consistent. One user's devices in
    /// three regions end up showing the same.
    @Test func concurrentSocialAndGroupDecisionsConvergeEverywhere() async throws {
        try await LocalCluster.with { cluster in
            let annEU = try await cluster["eu"].connect("ann")
            let annUS = try await cluster["us"].connect("ann", device: "d2")
            let annAP = try await cluster["ap"].connect("ann", device: "d3")
            let bobUS = try await cluster["us"].connect("bob")
            let bobEU = try await cluster["eu"].connect("bob", device: "d2")
            let gus = try await cluster["eu"].connect("gus")
            let cat = try await cluster["ap"].connect("cat")
            let dan = try await cluster["ap"].connect("dan")
            let eve = try await cluster["ap"].connect("eve")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "6" } },
                    "\(cluster.syncLogs)")
            let crew = try await annEU.client.createGroup(name: "crew", members: ["bob", "cat", "dan", "eve"]).groupID
            let side = try await annEU.client.createGroup(name: "side", members: ["cat"]).groupID
            _ = try await annEU.client.setRole(of: "bob", in: crew, admin: true)
            let bobsNote = try await bobUS.client.send(to: .group(crew), body: "bob's note")
            let annsNote = try await annEU.client.send(to: .group(crew), body: "ann's note")
            #expect(try await converged(cluster), "\(cluster.syncLogs)")

            await partition(cluster)
            // Each pair is written first in one region, then in another: the second has the later hlc.
            // rename vs rename: the later name stays.
            _ = try await annEU.client.renameGroup(crew, to: "eu name")
            _ = try await bobUS.client.renameGroup(crew, to: "us name, wins")
            // role change vs kick: the later decision stands; a promotion never brings a member back.
            _ = try await annEU.client.setRole(of: "cat", in: crew, admin: true)
            _ = try await annUS.client.removeMember("cat", from: crew)
            _ = try await annUS.client.removeMember("dan", from: crew)
            _ = try await annEU.client.setRole(of: "dan", in: crew, admin: true)
            // kick vs a message from the kicked member: the message was accepted where it was sent, and stays.
            _ = try await annEU.client.removeMember("eve", from: crew)
            _ = try await eve.client.send(to: .group(crew), body: "eve's last word")
            // block vs message: the same.
            _ = try await bobUS.client.block("cat")
            _ = try await cat.client.send(to: .user("bob"), body: "cat to bob, before the block arrived")
            // leave vs invite: bob invites gus on one device and leaves on another.
            _ = try await bobEU.client.addMember("gus", to: crew)
            _ = try await bobUS.client.removeMember("bob", from: crew)
            // dissolve vs message.
            _ = try await annEU.client.dissolveGroup(side)
            _ = try await cat.client.send(to: .group(side), body: "into the side group")
            // recall vs edit: the tombstone wins whatever the order.
            _ = try await bobUS.client.recall(messageID: bobsNote.messageID)
            _ = try await bobEU.client.edit(messageID: bobsNote.messageID, body: "edited after the recall, elsewhere")
            // Delete for me on one device, in one region: every device of the user, everywhere, after the heal.
            _ = try await annAP.client.delete(messageID: annsNote.messageID)
            // Crossing friend requests: the later request is the one waiting.
            _ = try await annEU.client.requestFriend("dan", greeting: "from eu")
            _ = try await dan.client.requestFriend("ann", greeting: "from ap")
            // With every peer's sync down, typing is still answered and reaches the members in the region.
            try await cat.client.typing(in: ConversationID.direct("cat", "eve"))
            let local = await first(of: eve.client.typingNotices) { $0.userID == "cat" }
            #expect(local?.conversationID == ConversationID.direct("cat", "eve"), "typing within a cut-off region")
            try await heal(cluster)

            #expect(try await converged(cluster), "\(cluster.syncLogs)")
            let digests = try cluster.regions.map { try $0.stateDigest }
            #expect(Set(digests).count == 1, "the same state everywhere:\n\(digests.joined(separator: "\n"))")
            let (status, report) = try cluster.check()
            #expect(status == 0, "\(report)")

            // What every region answers, asked through ann's device there.
            for ann in [annEU, annUS, annAP] {
                let info = try await ann.client.groupInfo(crew)
                #expect(info.name == "us name, wins", "\(info)")
                let members = try await ann.client.members(of: crew).members
                #expect(members.map(\.userID) == ["ann", "gus"], "\(members.map(\.userID))")
                let history = try await ann.client.history(conversationID: ConversationID.group(crew))
                #expect(history.messages.map(\.messagePosted.body).contains("eve's last word"))
                #expect(!history.messages.contains { $0.messagePosted.messageID == annsNote.messageID }, "deleted for ann everywhere")
                let recalled = history.messages.first { $0.messagePosted.messageID == bobsNote.messageID }?.messagePosted
                #expect(recalled?.recalled == true && recalled?.body == "")
                #expect(try await ann.client.groupInfo(side).dissolved)
                let incoming = try await ann.client.friends().friends
                #expect(incoming.map(\.userID) == ["dan"] && incoming.first?.status == .friendIncoming && incoming.first?.greeting == "from ap")
            }
            // The decisions hold for new requests, in the regions that had not seen them.
            #expect(await refusal { try await eve.client.send(to: .group(crew), body: "again") } == .notMember)
            #expect(await refusal { try await cat.client.send(to: .user("bob"), body: "again") } == .blocked)
            #expect(await refusal { try await cat.client.send(to: .group(side), body: "again") } == .groupDissolved)
            let bobsView = try await bobUS.client.history(conversationID: ConversationID.direct("bob", "cat"))
            #expect(bobsView.messages.map(\.messagePosted.body) == ["cat to bob, before the block arrived"])
            // dan, promoted after being removed, comes back a plain member.
            _ = try await annAP.client.addMember("dan", to: crew)
            #expect(try await eventually { try await annEU.client.members(of: crew).members.first { $0.userID == "dan" }?.role == "member" })
            _ = try await annUS.client.answerFriendRequest(from: "dan", accept: true)
            #expect(try await eventually { try await dan.client.friends().friends.first?.status == .friend })

            // One user, three regions: a read on one device clears the unread count everywhere.
            let last = try await dan.client.send(to: .user("ann"), body: "read me anywhere")
            for ann in [annEU, annUS, annAP] { #expect(await ann.inbox.wait { $0.containsMessage("read me anywhere") }) }
            let direct = ConversationID.direct("ann", "dan")
            #expect(try await annEU.client.unreadCounts()[direct] == 1)
            _ = try await annUS.client.markRead(conversationID: direct, messageID: last.messageID)
            for ann in [annEU, annAP] {
                #expect(await ann.inbox.wait { events in
                    events.contains { if case .readMoved(let read) = $0.event.kind { read.messageID == last.messageID } else { false } }
                })
                #expect(try await eventually { try await ann.client.unreadCounts()[direct, default: 0] == 0 })
            }
            #expect(try await converged(cluster), "\(cluster.syncLogs)")
            #expect(try cluster.check().status == 0)
            #expect(await annEU.inbox.wait { $0.contains { $0.event.messageDeleted.messageID == annsNote.messageID } })
            #expect(try await gus.client.history(conversationID: ConversationID.group(crew)).messages
                .contains { $0.messagePosted.messageID == annsNote.messageID }, "kept for the others")

            // Typing crosses regions: dan types in ap, and ann's devices in all three regions are told;
            // so is each region's member of a group when gus types in eu. Never an event anywhere.
            let eventsBefore = try cluster.regions.map { try $0.postgres.psql("SELECT count(*) FROM events") }
            try await dan.client.typing(in: direct)
            for (region, ann) in [("eu", annEU), ("us", annUS), ("ap", annAP)] {
                let notice = await first(of: ann.client.typingNotices) { $0.conversationID == direct }
                #expect(notice?.userID == "dan" && notice?.typing == true, "ann's device in \(region) hears dan typing")
            }
            try await gus.client.typing(in: ConversationID.group(crew))
            let notice = await first(of: dan.client.typingNotices) { $0.conversationID == ConversationID.group(crew) }
            #expect(notice?.userID == "gus", "a group's member in another region (dan, ap) hears gus (eu)")
            #expect(try cluster.regions.map { try $0.postgres.psql("SELECT count(*) FROM events") } == eventsBefore, "typing is not an event")
            for user in [annEU, annUS, annAP, bobUS, bobEU, gus, cat, dan, eve] { await user.stop() }
        }
    }

    /// ap's wall clock runs five minutes behind, us's five minutes ahead:
    /// replies still sort after what they answer, and regions converge.
    @Test func skewedClocksStillConvergeAndRepliesSortAfterWhatTheyAnswer() async throws {
        let minutes5 = 5 * 60 * 1000
        let skew = ["ap": ["--clock-skew-ms=\(-minutes5)"], "us": ["--clock-skew-ms=\(minutes5)"]]
        try await LocalCluster.with(logicArguments: skew, syncArguments: skew) { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            let cat = try await cluster["ap"].connect("cat")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "3" } },
                    "\(cluster.syncLogs)")
            let group = try await ann.client.createGroup(name: "skew", members: ["bob", "cat"]).groupID
            // A conversation hopping across the three clocks: each reply is
            // written once its author's region has applied the message before it.
            let turns: [(TestUser, String)] = [(bob, "1 from us (ahead)"), (cat, "2 from ap (behind)"), (ann, "3 from eu"),
                                               (cat, "4 from ap (behind)"), (bob, "5 from us (ahead)"), (cat, "6 from ap (behind)")]
            #expect(try await eventually { try cluster["us"].postgres.psql("SELECT count(*) FROM conversations WHERE is_group") == "1" })
            #expect(try await eventually { try cluster["ap"].postgres.psql("SELECT count(*) FROM conversations WHERE is_group") == "1" })
            var previous: String?
            for (author, body) in turns {
                if let previous {
                    #expect(await author.inbox.wait { $0.containsMessage(previous) }, "\(author.id) saw \(previous)")
                }
                _ = try await author.client.send(to: .group(group), body: body)
                previous = body
            }
            #expect(try await eventually { Set(try cluster.regions.map { try $0.appliedVector }).count == 1 }, "\(cluster.syncLogs)")
            #expect(Set(try cluster.regions.map { try $0.stateDigest }).count == 1)
            for user in [ann, bob, cat] {
                let page = try await user.client.history(conversationID: ConversationID.group(group))
                let bodies = page.messages.reversed().map(\.messagePosted.body)
                #expect(bodies == turns.map(\.1), "\(user.id) sees the conversation in reply order: \(bodies)")
            }
            for user in [ann, bob, cat] { await user.stop() }
        }
    }
}
