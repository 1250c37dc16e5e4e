import Foundation
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Testing

/// Three regions really running, each with its own Postgres and Redis,
/// replicating through `parley sync`.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ReplicationTests {
    /// Polls `condition` until it holds or `timeout` passes.
    private func eventually(_ timeout: Duration = .seconds(30), _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }

    private func vector(_ region: LocalRegion) throws -> String {
        try region.postgres.psql("SELECT string_agg(origin || ':' || applied_seq, ',' ORDER BY origin) FROM origins WHERE applied_seq > 0")
    }

    /// Every table replication writes, over every origin: one md5 per table.
    private func digest(_ region: LocalRegion) throws -> String {
        try region.postgres.psql("""
            SELECT concat_ws(' ',
              'events', md5((SELECT string_agg(concat_ws(',', origin, seq, hlc, kind, md5(payload)), ';' ORDER BY origin, seq) FROM events)),
              'inbox', md5((SELECT string_agg(concat_ws(',', user_id, origin, user_seq, event_seq), ';' ORDER BY user_id, origin, user_seq) FROM inbox)),
              'counters', md5((SELECT string_agg(concat_ws(',', user_id, origin, user_seq), ';' ORDER BY user_id, origin) FROM user_counters)),
              'messages', md5((SELECT string_agg(concat_ws(',', origin, seq, conversation_id, hlc, sender, body), ';' ORDER BY origin, seq) FROM messages)),
              'conversations', md5((SELECT string_agg(concat_ws(',', conversation_id, is_group, name, owner), ';' ORDER BY conversation_id) FROM conversations)),
              'members', md5((SELECT string_agg(concat_ws(',', conversation_id, user_id), ';' ORDER BY conversation_id, user_id) FROM members)),
              'markers', md5((SELECT string_agg(concat_ws(',', conversation_id, user_id, hlc, origin, seq), ';' ORDER BY conversation_id, user_id) FROM read_markers)),
              'users', md5((SELECT string_agg(user_id, ';' ORDER BY user_id) FROM users)))
            """)
    }

    @Test func concurrentWritersInThreeRegionsConvergeToOneState() async throws {
        try await LocalCluster.with { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            let cat = try await cluster["ap"].connect("cat")
            // Each sign-in is an event in its own region; wait until every region knows every user.
            #expect(try await eventually {
                try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "3" }
            }, "every region knows every user\n\(cluster.syncLogs)")

            let group = try await ann.client.createGroup(name: "world", members: ["bob", "cat"])
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM conversations WHERE is_group") == "1" } }, "\(cluster.syncLogs)")
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for (user, peer) in [(ann, "bob"), (bob, "cat"), (cat, "ann")] {
                    tasks.addTask {
                        for round in 0..<15 {
                            _ = try await user.client.send(to: .user(peer), body: "\(user.id)→\(peer) \(round)")
                            _ = try await user.client.send(to: .group(group.groupID), body: "\(user.id) in group \(round)")
                        }
                    }
                }
                try await tasks.waitForAll()
            }
            #expect(try await eventually {
                let vectors = try cluster.regions.map(vector)
                return Set(vectors).count == 1 && vectors[0].contains("ap:") && vectors[0].contains("us:")
            }, "applied vectors converge\n\(cluster.syncLogs)")
            let digests = try cluster.regions.map(digest)
            #expect(Set(digests).count == 1, "the same state everywhere:\n\(digests.joined(separator: "\n"))")

            // bob's device, in us, got ann's messages from eu pushed live once us applied them.
            #expect(await bob.inbox.wait { events in (0..<15).allSatisfy { events.containsMessage("ann→bob \($0)") } })
            let fromEU = await bob.inbox.received.filter { $0.position.origin == "eu" }
            #expect(fromEU.contains { $0.live }, "replicated events are pushed, not only pulled")
            #expect(Set(fromEU.map(\.position.userSeq)).count == fromEU.count, "nothing twice")
            for user in [ann, bob, cat] { await user.stop() }
        }
    }

    @Test func eventsTravelThroughAThirdRegionAndAStoppedRegionCatchesUp() async throws {
        // eu and us do not pull from each other: everything between them goes through ap.
        let cut = ["eu": ["--without-peer", "us"], "us": ["--without-peer", "eu"]]
        try await LocalCluster.with(syncArguments: cut) { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            #expect(try await eventually {
                try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" }
            }, "each registration reached the far region through ap\n\(cluster.syncLogs)")
            _ = try await ann.client.send(to: .user("bob"), body: "via ap")
            #expect(try await eventually { try cluster["us"].postgres.psql("SELECT count(*) FROM messages WHERE body = 'via ap'") == "1" })
            try await bob.client.sync()
            #expect(await bob.inbox.wait { $0.containsMessage("via ap") })

            // us's replication stops; eu keeps writing; us comes back and catches up.
            await cluster["us"].stopSync()
            for round in 0..<20 { _ = try await ann.client.send(to: .user("bob"), body: "while us was away \(round)") }
            try await cluster["us"].startSync()
            #expect(try await eventually { Set(try cluster.regions.map(vector)).count == 1 }, "us caught up\n\(cluster.syncLogs)")
            #expect(Set(try cluster.regions.map(digest)).count == 1)
            for user in [ann, bob] { await user.stop() }
        }
    }
}
