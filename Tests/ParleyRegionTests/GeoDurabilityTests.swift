import ParleyClient
import ParleyCore
import ParleyTestSupport
import Testing

/// `geo` sends are acknowledged once k = 1 other region (of 2) stores them.
@Suite(.serialized, .timeLimit(.minutes(3))) struct GeoDurabilityTests {
    @Test func geoSendsAckWithOnePeerDownAndTimeOutWithBothDownYetStillReplicate() async throws {
        try await LocalCluster.with { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } },
                    "\(cluster.syncLogs)")

            let bothUp = try await ann.client.send(to: .user("bob"), body: "geo, all up", durability: .geo)
            // Acknowledged means another region already holds it.
            let holders = try ["us", "ap"].filter { name in
                try cluster[name].postgres.psql("SELECT count(*) FROM messages WHERE body = 'geo, all up'") == "1"
            }
            #expect(!holders.isEmpty, "acked \(bothUp.messageID) before any other region stored it")

            await cluster["us"].stopSync()
            let onePeerDown = try await ann.client.send(to: .user("bob"), body: "geo, us down", durability: .geo)
            #expect(try cluster["ap"].postgres.psql("SELECT count(*) FROM messages WHERE body = 'geo, us down'") == "1",
                    "ap confirmed \(onePeerDown.messageID)")

            await cluster["ap"].stopSync()
            let started = ContinuousClock.now
            do {
                _ = try await ann.client.send(to: .user("bob"), body: "geo, both down", clientMsgID: "lonely", durability: .geo)
                Issue.record("a geo send with no peer reachable was acknowledged")
            } catch let error as ClientError {
                #expect(error.code == .durabilityTimeout, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(10), "the send gave up at its deadline")
            // It is committed where it was sent, and a local send still acks at once.
            #expect(try cluster["eu"].postgres.psql("SELECT count(*) FROM messages WHERE body = 'geo, both down'") == "1")
            _ = try await ann.client.send(to: .user("bob"), body: "local, both down", durability: .local)

            try await cluster["us"].startSync()
            try await cluster["ap"].startSync()
            // The retry of the timed-out send is the same message, now confirmed.
            let retried = try await ann.client.send(to: .user("bob"), body: "geo, both down", clientMsgID: "lonely", durability: .geo)
            #expect(retried.duplicate)
            #expect(try await eventually { Set(try cluster.regions.map { try $0.appliedVector }).count == 1 }, "\(cluster.syncLogs)")
            for region in cluster.regions {
                #expect(try region.postgres.psql("SELECT count(*) FROM messages WHERE body LIKE '%both down'") == "2", "\(region.name)")
            }
            #expect(await bob.inbox.wait { $0.count(ofMessage: "geo, both down") == 1 })
            for user in [ann, bob] { await user.stop() }
        }
    }
}
