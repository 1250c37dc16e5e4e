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
                let vectors = try cluster.regions.map { try $0.appliedVector }
                return Set(vectors).count == 1 && vectors[0].contains("ap:") && vectors[0].contains("us:")
            }, "applied vectors converge\n\(cluster.syncLogs)")
            let digests = try cluster.regions.map { try $0.stateDigest }
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
            func apStatus() async throws -> ReplicationStatus {
                try JSONDecoder().decode(ReplicationStatus.self, from: Data(try await cluster["ap"].syncHTTP("/status").utf8))
            }
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
            #expect(try await eventually { try await apStatus().peers["us"]?.connected == false }, "ap reports us gone")
            try await cluster["us"].startSync()
            #expect(try await eventually { Set(try cluster.regions.map { try $0.appliedVector }).count == 1 }, "us caught up\n\(cluster.syncLogs)")
            #expect(Set(try cluster.regions.map { try $0.stateDigest }).count == 1)

            // What us's sync reports once caught up: ap connected, nothing behind, the vector in the database.
            let status = try JSONDecoder().decode(ReplicationStatus.self, from: Data(try await cluster["us"].syncHTTP("/status").utf8))
            #expect(status.peers.keys.sorted() == ["ap"], "eu is cut")
            #expect(status.peers["ap"]?.connected == true && status.peers["ap"]?.lagEvents == 0)
            #expect(status.eventsApplied == 20, "the twenty sends it missed, applied since it restarted")
            let vector = status.applied.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
            #expect(vector == (try cluster["us"].appliedVector))
            let metrics = try await cluster["us"].syncHTTP("/metrics")
            #expect(metrics.contains(#"parley_sync_peer_lag_events{peer="ap"} 0"#), "\(metrics)")
            #expect(metrics.contains(#"parley_sync_applied_seq{origin="eu"} \#(status.applied["eu"] ?? 0)"#), "\(metrics)")
            for user in [ann, bob] { await user.stop() }
        }
    }

    /// One logic instance per region pushes replicated events; whichever it
    /// is, killing it hands the job to the other.
    /// A peer that was away is sent what it missed in stream messages of a
    /// few MiB each, however big the events: 400 messages of 15 KB (6 MB)
    /// once made one message over gRPC's 4 MiB and the peer never caught up.
    @Test func aBacklogOfBigMessagesReplicatesInPiecesThePeerAccepts() async throws {
        try await LocalCluster.with(["eu", "us"]) { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } })
            await cluster["us"].stopSync()
            let body = String(repeating: "x", count: 15_000)
            for round in 0..<400 { _ = try await ann.client.send(to: .user("bob"), body: "\(round) \(body)") }
            try await cluster["us"].startSync()
            #expect(try await eventually(.seconds(60)) { Set(try cluster.regions.map { try $0.appliedVector }).count == 1 },
                    "us caught up\n\(cluster.syncLogs)")
            #expect(try cluster["us"].postgres.psql("SELECT count(*) FROM messages WHERE length(body) > 15000") == "400")
            for user in [ann, bob] { await user.stop() }
        }
    }

    @Test func replicatedPushesResumeWhenTheLogicInstanceSendingThemDies() async throws {
        try await LocalCluster.with(["eu", "us"]) { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } },
                    "\(cluster.syncLogs)")
            for victim in [0, 1] {
                await cluster["us"].killLogic(victim)
                // The standby takes the lead within about a second; until it listens, pushes
                // are missed (bob would sync them), so keep writing until any message
                // written after the kill arrives live, however late (a loaded machine).
                let prefix = "after us logic\(victim) died, "
                let pushedLive: @Sendable ([ReceivedEvent]) -> Bool = { events in
                    events.contains { event in
                        guard event.live, case .messagePosted(let posted) = event.event.kind else { return false }
                        return posted.body.hasPrefix(prefix)
                    }
                }
                var pushed = false
                for attempt in 0..<60 where !pushed {
                    _ = try await ann.client.send(to: .user("bob"), body: prefix + "\(attempt)")
                    pushed = await bob.inbox.wait(timeout: .milliseconds(500), until: pushedLive)
                }
                #expect(pushed, "a replicated message reached bob live after logic\(victim) died")
                try await cluster["us"].startLogic(victim)
            }
            for user in [ann, bob] { await user.stop() }
        }
    }

    @Test func aDeviceThatMovesToAnotherRegionResumesWithNoGapAndNothingTwice() async throws {
        try await LocalCluster.with { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bobInUS = try await cluster["us"].connect("bob")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } },
                    "\(cluster.syncLogs)")
            for round in 0..<10 { _ = try await ann.client.send(to: .user("bob"), body: "before \(round)") }
            #expect(await bobInUS.inbox.wait { events in (0..<10).allSatisfy { events.containsMessage("before \($0)") } })
            // bob's device leaves us (its region failed, say) and comes back through eu with its cursor.
            await bobInUS.stop()
            let cursor = await bobInUS.client.cursor
            for round in 0..<10 { _ = try await ann.client.send(to: .user("bob"), body: "while moving \(round)") }
            let bobInEU = try await cluster["eu"].connect("bob", cursor: cursor)
            for round in 0..<5 { _ = try await ann.client.send(to: .user("bob"), body: "after \(round)") }
            let expected = (0..<10).map { "while moving \($0)" } + (0..<5).map { "after \($0)" }
            #expect(await bobInEU.inbox.wait { events in expected.allSatisfy { events.containsMessage($0) } })
            let received = await bobInEU.inbox.received
            #expect(!received.contains { event in (0..<10).contains { event.isMessage("before \($0)") } }, "nothing bob had is sent again")
            for body in expected { #expect(received.count(ofMessage: body) == 1, "\(body) once") }
            // Positions from eu continue exactly where the us connection stopped.
            let positions = (await bobInUS.inbox.received + received).filter { $0.position.origin == "eu" }.map(\.position.userSeq)
            #expect(positions == Array(1...UInt64(positions.count)), "dense and once: \(positions)")
            for user in [ann, bobInEU] { await user.stop() }
        }
    }

    /// Session guarantees: sam writes in eu while eu cannot replicate, then
    /// moves to us and writes again. us holds sam's next write until it has
    /// sam's first, so rita (in ap) receives them in the order sam wrote
    /// them, and sam's history in us shows the first.
    @Test func aDeviceThatMovesKeepsItsWritesInOrderEverywhereAndReadsThem() async throws {
        try await LocalCluster.with(logicArguments: ["us": ["--session-wait-ms", "30000"]]) { cluster in
            let configuration = ParleyClient.Configuration(
                gates: [cluster["eu"].address(.tcp), cluster["us"].address(.tcp)],
                token: try await cluster["eu"].token(for: "sam"), deviceID: "phone"
            )
            let sam = ParleyClient(configuration: configuration)
            try await sam.connect()
            let rita = try await cluster["ap"].connect("rita")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } },
                    "\(cluster.syncLogs)")
            await cluster["eu"].stopSync()
            let first = try await sam.send(to: .user("rita"), body: "first", durability: .local)
            #expect(first.event.origin == "eu")
            // eu's gate goes away: sam's device moves to us.
            await cluster["eu"].stopGate()
            #expect(try await eventually(.seconds(30)) {
                let recovered = await sam.recoveries.count == 1
                let connected = await sam.isConnected
                return recovered && connected
            })
            let second = Task { try await sam.send(to: .user("rita"), body: "second", durability: .local) }
            try await Task.sleep(for: .seconds(1))  // the outage: eu still cannot replicate
            try await cluster["eu"].startSync()
            let secondAck = try await second.value
            #expect(secondAck.event.origin == "us")
            #expect(await rita.inbox.wait(timeout: .seconds(30)) { $0.containsMessage("first") && $0.containsMessage("second") })
            let bodies = await rita.inbox.received.compactMap { event -> String? in
                guard case .messagePosted(let posted) = event.event.kind, posted.sender == "sam" else { return nil }
                return posted.body
            }
            #expect(bodies == ["first", "second"], "rita, in a third region, receives sam's writes in sam's order: \(bodies)")
            let history = try await sam.history(conversationID: ConversationID.direct("rita", "sam"))
            #expect(history.messages.map(\.messagePosted.body) == ["second", "first"], "sam reads what sam wrote")
            await sam.disconnect()
            await rita.stop()
        }
    }
}
