import Foundation
import ParleyCore
import ParleyFault
import ParleyTestSupport
import Testing

/// Three regions whose syncs reach each other through fault proxies, hurt
/// while they run.
@Suite(.serialized, .timeLimit(.minutes(3))) struct LinkFaultTests {
    @Test func aLinkCutOrBlackholedWhileRunningIsRoutedAroundAndRejoinedWhenHealed() async throws {
        try await LocalCluster.with(faultyLinks: true) { cluster in
            func status(_ region: String) async throws -> ReplicationStatus {
                try JSONDecoder().decode(ReplicationStatus.self, from: Data(try await cluster[region].syncHTTP("/status").utf8))
            }
            func direct(_ a: String, _ b: String) async throws -> Bool {
                let (ab, ba) = (try await status(a).peers[b]?.connected, try await status(b).peers[a]?.connected)
                return ab == true && ba == true
            }
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            #expect(try await eventually {
                try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" }
            }, "\(cluster.syncLogs)")
            #expect(try await eventually { try await direct("eu", "us") })
            // ap has written nothing of its own: its streams are up all the same.
            #expect(try await eventually {
                let (euAP, usAP) = (try await direct("eu", "ap"), try await direct("us", "ap"))
                return euAP && usAP
            }, "\(cluster.syncLogs)")

            for fault in [LinkFaults.State.cut, .blackhole] {
                cluster.setLink("eu", "us", LinkFaults(state: fault))
                // Cut: resets are seen at once. Blackhole: only the keepalive notices (~5 s).
                #expect(try await eventually { try await status("us").peers["eu"]?.connected == false },
                        "us notices its link to eu is \(fault)\n\(cluster.syncLogs)")
                let body = "while eu–us is \(fault)"
                _ = try await ann.client.send(to: .user("bob"), body: body)
                #expect(try await eventually { try cluster["us"].postgres.psql("SELECT count(*) FROM messages WHERE body = '\(body)'") == "1" },
                        "ann's message reached us through ap\n\(cluster.syncLogs)")
                #expect(await bob.inbox.wait { $0.containsMessage(body) })
                #expect(try cluster["eu"].postgres.psql("SELECT count(*) FROM messages WHERE body = '\(body)'") == "1")

                cluster.setLink("eu", "us", .healthy)
                #expect(try await eventually { try await direct("eu", "us") }, "the direct link is used again once healed\n\(cluster.syncLogs)")
            }
            let dropped = cluster.link(from: "us", to: "eu").counts.dropped
            #expect(dropped > 0, "us kept dialling eu while the link was cut, and was refused")
            #expect(try await eventually { Set(try cluster.regions.map { try $0.appliedVector }).count == 1 })
            #expect(Set(try cluster.regions.map { try $0.stateDigest }).count == 1)
            let fromEU = await bob.inbox.received.filter { $0.position.origin == "eu" }
            #expect(Set(fromEU.map(\.position.userSeq)).count == fromEU.count, "nothing twice")
            for user in [ann, bob] { await user.stop() }
        }
    }
}
