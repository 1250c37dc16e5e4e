import Foundation
import ParleyCheck
import ParleyCore
import ParleyFault
import ParleyTestSupport
import Testing

/// `parley check` against three regions really running.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CheckTests {
    @Test func consistentUnderWritesThenEachCorruptionIsNamed() async throws {
        try await LocalCluster.with { cluster in
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            let cat = try await cluster["ap"].connect("cat")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "3" } })
            let group = try await ann.client.createGroup(name: "trio", members: ["bob", "cat"]).groupID

            // Writers in all three regions while the checker runs.
            let writers = Task {
                for round in 0..<15 {
                    _ = try await ann.client.send(to: .group(group), body: "ann \(round)")
                    _ = try await bob.client.send(to: .user("cat"), body: "bob \(round)")
                    _ = try await cat.client.send(to: .user("ann"), body: "cat \(round)")
                }
            }
            for _ in 0..<3 {
                let (status, output) = try cluster.check()
                #expect(status == 0, "consistent while writes continue:\n\(output)")
                #expect(output.contains("verdict: CONSISTENT"))
            }
            try await writers.value
            #expect(try await eventually { Set(try cluster.regions.map { try $0.appliedVector }).count == 1 })

            // A body changed behind the system's back in us.
            let original = "ann 1"
            _ = try cluster["us"].postgres.psql("UPDATE messages SET body = 'forged' WHERE body = '\(original)'")
            var (status, output) = try cluster.check()
            #expect(status == 1, "\(output)")
            let forgedEvent = try cluster["eu"].postgres.psql("SELECT origin || '-' || seq FROM messages WHERE body = '\(original)'")
            #expect(output.contains("conversation \(ConversationID.group(group)): the message of event \(forgedEvent) differs"),
                    "names the conversation and the event:\n\(output)")
            #expect(output.contains("us: ") && output.contains("forged") && output.contains(original), "shows both versions:\n\(output)")
            let json = try JSONDecoder().decode(ConsistencyReport.self, from: Data(try cluster.check(["--json"]).output.utf8))
            #expect(json.verdict == .divergent && json.differences.map(\.kind) == [.state])
            _ = try cluster["us"].postgres.psql("UPDATE messages SET body = '\(original)' WHERE body = 'forged'")
            #expect(try cluster.check().status == 0, "repaired by hand, consistent again")

            // An event row deleted in ap: pinpointed to its origin and seq.
            let victim = try cluster["ap"].postgres.psql("SELECT seq FROM events WHERE origin = 'us' ORDER BY seq DESC LIMIT 1 OFFSET 3")
            _ = try cluster["ap"].postgres.psql("DELETE FROM events WHERE origin = 'us' AND seq = \(victim)")
            (status, output) = try cluster.check()
            #expect(status == 1)
            #expect(output.contains("event us-\(victim) differs") && output.contains("ap: missing"), "\(output)")
            #expect(output.contains("first missing event: us-\(victim)"), "\(output)")

            // An extra event inserted in eu beyond what it applied.
            let head = try cluster["eu"].postgres.psql("SELECT applied_seq FROM origins WHERE origin = 'ap'")
            let extra = Int(head)! + 1
            _ = try cluster["eu"].postgres.psql("INSERT INTO events (origin, seq, hlc, kind, payload) SELECT origin, \(extra), hlc, kind, payload FROM events WHERE origin = 'ap' AND seq = \(head)")
            (status, output) = try cluster.check()
            #expect(status == 1)
            #expect(output.contains("first extra event: ap-\(extra)"), "\(output)")
            for user in [ann, bob, cat] { await user.stop() }
        }
    }

    @Test func aLaggingRegionIsComparedAtTheMinimumAndAStoppedOneIsNamed() async throws {
        try await LocalCluster.with(faultyLinks: true) { cluster in
            let ann = try await cluster["eu"].connect("ann")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "1" } })
            // us hears nothing from anyone: it lags, and says so.
            for peer in ["eu", "ap"] { cluster.link(from: "us", to: peer).set(LinkFaults(state: .blackhole)) }
            let notes = try await ann.client.createGroup(name: "notes", members: []).groupID
            for round in 0..<10 { _ = try await ann.client.send(to: .group(notes), body: "note \(round)") }
            #expect(try await eventually { try cluster["ap"].postgres.psql("SELECT count(*) FROM messages") == "10" })
            var report: ConsistencyReport?
            #expect(try await eventually {
                report = try JSONDecoder().decode(ConsistencyReport.self, from: Data(try cluster.check(["--json"]).output.utf8))
                return report?.lag.contains { $0.region == "us" && $0.peer == "eu" && $0.events >= 11 } == true
            }, "the lag matrix shows us behind eu: \(String(describing: report))")
            #expect(report?.verdict == .consistent, "compared at the minimum vector")
            #expect(report?.comparedAt.contains("eu:1") == true, "eu's registration is everywhere, its group and notes not yet")
            let (status, output) = try cluster.check()
            #expect(status == 0 && output.contains("us "), "\(output)")
            // --watch: one line per check, with the verdict and the largest lag.
            let lines = try cluster.watchCheck(every: 0.3, lines: 3)
            #expect(lines.count == 3 && lines.allSatisfy { $0.contains(" consistent; max lag ") && $0.contains("(us behind ") }, "\(lines)")
            for peer in ["eu", "ap"] { cluster.link(from: "us", to: peer).set(.healthy) }

            await cluster["ap"].stopSync()
            let (downStatus, downOutput) = try cluster.check()
            #expect(downStatus == 2, "\(downOutput)")
            #expect(downOutput.contains("ap  UNREACHABLE"), "names the region:\n\(downOutput)")
            await ann.stop()
        }
    }
}
