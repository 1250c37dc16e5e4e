import Foundation
import ParleyClient
import ParleyCore
import ParleyTestSupport
import ParleyTools
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Broadcasts of the platform API (docs/PLATFORM.md), run by real ext
/// processes: every recipient once, through a killed ext and a partition.
@Suite(.serialized, .timeLimit(.minutes(4))) struct BroadcastTests {
    static func post(_ region: LocalRegion, _ body: String) async throws -> PlatformTests.Answer {
        try await PlatformTests.call(region, "/broadcasts", body: body)
    }

    /// `GET /broadcasts/<id>`: its JSON body.
    static func progress(_ region: LocalRegion, _ id: String) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: "\(region.platformURL)/broadcasts/\(id)")!)
        request.setValue("Bearer \(PlatformTests.ordersToken)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestSupportError("GET broadcast \(id): \(status) \(String(decoding: data, as: UTF8.self))")
        }
        return json
    }

    /// Signs each user in once (so every region comes to know them) and out again.
    static func register(_ users: [String], in region: LocalRegion) async throws {
        try await withThrowingTaskGroup { group in
            for chunk in stride(from: 0, to: users.count, by: 10).map({ Array(users[$0..<min($0 + 10, users.count)]) }) {
                group.addTask {
                    for user in chunk { try await region.connect(user, device: "setup").stop() }
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func anExtKilledMidBroadcastIsRestartedAndFinishesReachingEveryUserOnce() async throws {
        try await LocalRegion.with { region in
            let users = (0..<120).map { String(format: "u%03d", $0) }
            try await Self.register(users, in: region)
            let first = try await region.connect("u000"), last = try await region.connect("u119")
            // Small, slow batches, so the run is surely cut in the middle.
            let slow = ["--broadcast-batch", "10", "--broadcast-rate", "40"]
            try await region.startExt(0, arguments: slow)

            let request = #"{"broadcast_id": "maint-1", "scope": "region", "text": "Maintenance tonight"}"#
            let accepted = try await Self.post(region, request)
            #expect(accepted.status == 202 && accepted.json?["duplicate"] as? Bool == false && accepted.json?["region"] as? String == "eu",
                    "\(accepted)")
            #expect(try await eventually(.seconds(30)) { try await Self.progress(region, "maint-1")["reached"] as? Int ?? 0 >= 20 })
            await region.ext[0].kill9()
            // Cut in the middle: its stored progress says so.
            let cut = try region.postgres.psql("SELECT (done_at IS NULL) || ' ' || reached FROM broadcasts WHERE broadcast_id = 'maint-1'")
            let reachedAtCut = Int(cut.split(separator: " ").last ?? "") ?? -1
            #expect(cut.hasPrefix("true ") && (20..<120).contains(reachedAtCut), "\(cut)")

            try await region.startExt(0, arguments: slow)
            let again = try await Self.post(region, request)
            #expect(again.status == 202 && again.json?["duplicate"] as? Bool == true, "\(again)")
            #expect(try await eventually(.seconds(60)) { try await Self.progress(region, "maint-1")["done"] as? Bool == true })
            let done = try await Self.progress(region, "maint-1")
            #expect(done["reached"] as? Int == 120 && done["failed"] as? Int == 0, "\(done)")
            #expect(try region.postgres.psql(
                "SELECT count(*) || ' ' || count(DISTINCT conversation_id) FROM messages WHERE sender = '~orders'"
            ) == "120 120", "one notice per user, none twice")
            for user in [first, last] {
                #expect(await user.inbox.wait { $0.containsMessage("Maintenance tonight") })
                #expect(await user.inbox.received.count(ofMessage: "Maintenance tonight") == 1)
                await user.stop()
            }
            #expect(try await Self.post(region, #"{"broadcast_id": "x", "scope": "planet", "text": "hi"}"#).errorField == "scope")
            // Paths and methods the API does not have answer JSON too; a method
            // its path does not take is 405 naming the one it takes.
            let wrongMethod = try await PlatformTests.call(region, "/broadcasts/maint-1", body: "{}")
            #expect(wrongMethod.status == 405 && wrongMethod.errorCode == "method_not_allowed", "\(wrongMethod)")
            #expect(wrongMethod.headers.first { ($0.key as? String)?.lowercased() == "allow" }?.value as? String == "GET", "\(wrongMethod.headers)")
            let noPath = try await PlatformTests.call(region, "/nothing-here", body: "{}")
            #expect(noPath.status == 404 && noPath.errorCode == "not_found", "\(noPath)")
            await #expect(throws: TestSupportError.self) { try await Self.progress(region, "never-sent") }
        }
    }

    @Test func aBroadcastToEveryRegionReachesEveryUserOnceWithARegionPartitionedMeanwhile() async throws {
        try await LocalCluster.with(["eu", "us", "ap"]) { cluster in
            let eu = cluster["eu"], us = cluster["us"], ap = cluster["ap"]
            try await Self.register(["anna", "arno"], in: eu)
            try await Self.register(["bea", "ben"], in: us)
            try await Self.register(["cleo", "cyd"], in: ap)
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "6" } },
                    "\(cluster.syncLogs)")
            let ben = try await us.connect("ben"), cyd = try await ap.connect("cyd")
            try await eu.startExt(0)
            try await us.startExt(0)

            // ap hears nothing from the others while eu broadcasts.
            await ap.stopSync()
            let accepted = try await Self.post(eu, #"{"broadcast_id": "terms-2027", "scope": "all", "template": "order_shipped", "params": {"order": "all", "eta": "now"}}"#)
            #expect(accepted.status == 202, "\(accepted)")
            let text = "Your order all has shipped and arrives now."
            #expect(try await eventually(.seconds(30)) { try await Self.progress(eu, "terms-2027")["done"] as? Bool == true })
            #expect(try await Self.progress(eu, "terms-2027")["reached"] as? Int == 6)
            #expect(await ben.inbox.wait(timeout: .seconds(20)) { $0.containsMessage(text) }, "\(cluster.syncLogs)")
            #expect(try ap.postgres.psql("SELECT count(*) FROM messages WHERE sender = '~orders'") == "0")

            try await ap.startSync()
            #expect(await cyd.inbox.wait(timeout: .seconds(30)) { $0.containsMessage(text) }, "\(cluster.syncLogs)")
            #expect(try await eventually(.seconds(30)) {
                try cluster.regions.allSatisfy {
                    try $0.postgres.psql("SELECT count(*) || ' ' || count(DISTINCT conversation_id) FROM messages WHERE sender = '~orders'") == "6 6"
                }
            }, "\(cluster.syncLogs)")
            #expect(await ben.inbox.received.count(ofMessage: text) == 1)
            #expect(await cyd.inbox.received.count(ofMessage: text) == 1)

            // To one region: the users who first signed in there.
            let local = try await Self.post(us, #"{"broadcast_id": "us-only", "scope": "region", "text": "Hello, us"}"#)
            #expect(local.status == 202, "\(local)")
            #expect(try await eventually(.seconds(30)) { try await Self.progress(us, "us-only")["done"] as? Bool == true })
            #expect(try await Self.progress(us, "us-only")["reached"] as? Int == 2)
            #expect(await ben.inbox.wait { $0.containsMessage("Hello, us") })
            #expect(try us.postgres.psql(
                "SELECT string_agg(conversation_id, ',' ORDER BY conversation_id) FROM messages WHERE body = 'Hello, us'"
            ) == "d:bea:~orders,d:ben:~orders")
            #expect(await cyd.inbox.received.count(ofMessage: "Hello, us") == 0)
            await ben.stop()
            await cyd.stop()
        }
    }
}
