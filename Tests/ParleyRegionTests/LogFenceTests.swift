import Foundation
import ParleyCore
import ParleyFault
import ParleyProbe
import ParleyTestSupport
import Testing

/// A region's log never goes backwards (docs/REPLICATION.md): eu's database
/// is restored from an older copy of its data directory while us holds the
/// events eu lost.
@Suite(.serialized, .timeLimit(.minutes(4))) struct LogFenceTests {
    @Test func aRegionRestoredFromAnOlderCopyFencesItsOriginTheCheckerNamesItAndRecoverBringsTheEventsBack() async throws {
        try await LocalCluster.with(["eu", "us"]) { cluster in
            let (eu, us) = (cluster["eu"], cluster["us"])
            let database = try #require(eu.postgres as? PostgresServer)
            let ann = try await eu.connect("ann")
            let bob = try await us.connect("bob")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } })
            for round in 0..<5 { _ = try await ann.client.send(to: .user("bob"), body: "before the backup \(round)") }
            await ann.stop()

            // The backup: eu stopped as a whole, its data directory copied.
            // Nothing writes to eu's own log meanwhile: its head is the backup's.
            let backedUp = try #require(UInt64(try eu.postgres.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'")))
            await eu.killAll()
            let backup = try TestRun.scratch("eu-backup") + "/data"
            try copy(database.dataDirectory, to: backup)
            try await eu.restartAll()

            // Five more messages that us receives, then eu goes back to the backup.
            let again = try await eu.connect("ann", device: "d2")
            for round in 0..<5 { _ = try await again.client.send(to: .user("bob"), body: "after the backup \(round)") }
            await again.stop()
            let lost = backedUp + 5
            #expect(try await eventually { try us.postgres.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'") == "\(lost)" })
            await eu.killAll()
            try FileManager.default.removeItem(atPath: database.dataDirectory)
            try copy(backup, to: database.dataDirectory)
            try await eu.restartAll()
            #expect(try eu.postgres.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'") == "\(backedUp)", "eu runs on the older copy")

            // eu's sync sees us holding more of eu than eu does, and fences eu.
            #expect(try await eventually {
                try eu.postgres.psql("SELECT fenced IS NOT NULL FROM origins WHERE origin = 'eu'") == "t"
            }, "eu fenced its origin\n\(cluster.syncLogs)")
            let status = try JSONDecoder().decode(ReplicationStatus.self, from: Data(try await eu.syncHTTP("/status").utf8))
            let fence = try #require(status.fence)
            #expect(fence.peer == "us" && fence.peerHolds == lost && fence.localHead == backedUp)
            // The checker names it, and how to recover.
            let check = try cluster.check()
            #expect(check.status == 1, "\(check.output)")
            #expect(check.output.contains("[backwards]") && check.output.contains("parley recover --region eu"), "\(check.output)")
            // eu takes no changes: its gates fail their health, naming the fence.
            let health = try await TCPProbe.httpGet(eu.file.gates[0].webSocket, path: "/health", timeout: .seconds(5))
            #expect(health.status == 503 && health.body.contains("fenced"), "\(health)")
            // A device already there may read, but every change is refused
            // (`unavailable`: retried, it is served by another region).
            let stranded = try await eu.connect("ann", device: "d9", requestTimeout: .seconds(3))
            let refusal = await #expect(throws: ClientError.self) { _ = try await stranded.client.send(to: .user("bob"), body: "while fenced") }
            #expect(refusal?.code == .unavailable, "\(String(describing: refusal))")
            await stranded.stop()
            #expect(try eu.postgres.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'") == "\(backedUp)", "no seq was reused")

            // `parley recover` re-imports eu's lost events from us and lifts the fence.
            let (recovered, output) = try Subprocess.run(LocalRegion.binary, ["recover", "--regions", eu.directory, "--region", "eu"])
            #expect(recovered == 0, "\(output)")
            #expect(output.contains("re-imported eu-\(backedUp + 1)...eu-\(lost) from us; fence lifted"), "\(output)")
            #expect(try eu.postgres.psql("SELECT fenced IS NULL FROM origins WHERE origin = 'eu'") == "t")
            #expect(try eu.postgres.psql("SELECT count(*) FROM messages WHERE body LIKE 'after the backup %'") == "5")

            // eu takes changes again, numbered after what it lost, and the regions agree.
            #expect(try await eventually(.seconds(30)) {
                (try? await TCPProbe.httpGet(eu.file.gates[0].webSocket, path: "/health", timeout: .seconds(2)).status) == 200
            })
            let back = try await eu.connect("ann", device: "d3")
            _ = try await back.client.send(to: .user("bob"), body: "after recovery")
            await back.stop()
            #expect(try eu.postgres.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'") == "\(lost + 1)")
            var last = ""
            let agreed = try await eventually {
                let check = try cluster.check()
                last = check.output
                return check.status == 0
            }
            #expect(agreed, "\(last)")
            #expect(try await eventually { Set(try cluster.regions.map { try $0.stateDigest }).count == 1 })
            try await bob.client.sync()
            #expect(await bob.inbox.wait { $0.containsMessage("after recovery") })
            await bob.stop()
        }
    }

    /// `cp -a`, as root: the copy keeps the postgres user's ownership and modes.
    private func copy(_ source: String, to destination: String) throws {
        let (status, output) = try Subprocess.run("/bin/cp", ["-a", source, destination])
        guard status == 0 else { throw TestSupportError("cp -a \(source) \(destination): \(output)") }
    }
}
