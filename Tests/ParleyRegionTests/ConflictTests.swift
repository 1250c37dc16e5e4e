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
