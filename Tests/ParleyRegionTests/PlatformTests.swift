import Foundation
import ParleyClient
import ParleyCore
import ParleyTestSupport
import ParleyTools
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The platform API (docs/PLATFORM.md) served by a real `parley ext`, called
/// over real HTTP with bodies written by hand from openapi/platform.yaml.
@Suite(.serialized, .timeLimit(.minutes(3))) struct PlatformTests {
    /// A call's status and its JSON body (nil when the body is not JSON).
    struct Answer {
        let status: Int
        let json: [String: Any]?
        let headers: [AnyHashable: Any]

        var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
        var errorField: String? { (json?["error"] as? [String: Any])?["field"] as? String }
        var results: [[String: Any]] { json?["results"] as? [[String: Any]] ?? [] }
        func status(of user: String) -> String? { results.first { $0["user_id"] as? String == user }?["status"] as? String }
        func messageID(of user: String) -> String? { results.first { $0["user_id"] as? String == user }?["message_id"] as? String }
    }

    static let ordersToken = LocalRegion.serviceTokens["orders"]!

    static func call(_ region: LocalRegion, _ path: String, token: String? = ordersToken, body: String) async throws -> Answer {
        var request = URLRequest(url: URL(string: region.platformURL + path)!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.httpBody = Data(body.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        return Answer(
            status: http.statusCode, json: try? JSONSerialization.jsonObject(with: data) as? [String: Any], headers: http.allHeaderFields
        )
    }

    static func notice(_ id: String, to users: [String], _ content: String) -> String {
        let to = users.map { "\"\($0)\"" }.joined(separator: ",")
        return #"{"notice_id": "\#(id)", "to": [\#(to)], \#(content)}"#
    }

    @Test func badTokensAndMalformedBodiesAreRefusedWithAJSONBodyNamingTheField() async throws {
        try await LocalRegion.with { region in
            try await region.startExt(0)
            let body = Self.notice("n1", to: ["ann"], #""text": "hi""#)

            for token in [nil, "not-a-token", Self.ordersToken + "x"] {
                let answer = try await Self.call(region, "/notices", token: token, body: body)
                #expect(answer.status == 401 && answer.errorCode == "unauthorized", "\(String(describing: token)): \(answer)")
                #expect(answer.headers["Www-Authenticate"] as? String == "Bearer" || answer.headers["WWW-Authenticate"] as? String == "Bearer")
            }

            let malformed: [(body: String, field: String, code: String)] = [
                ("not json", "body", "invalid_body"),
                (#"{"to": ["ann"], "text": "hi"}"#, "notice_id", "invalid_body"),
                (#"{"notice_id": "n1", "to": "ann", "text": "hi"}"#, "to", "invalid_body"),
                (#"{"notice_id": "n1", "to": ["ann", 7], "text": "hi"}"#, "to[1]", "invalid_body"),
                (Self.notice("n/1", to: ["ann"], #""text": "hi""#), "notice_id", "invalid_field"),
                (Self.notice("n1", to: [], #""text": "hi""#), "to", "invalid_field"),
                (Self.notice("n1", to: ["ann"], #""text": """#), "text", "invalid_field"),
                (Self.notice("n1", to: ["ann"], #""text": "hi", "template": "order_shipped""#), "template", "invalid_field"),
                (Self.notice("n1", to: ["ann"], #""template": "no_such""#), "template", "unknown_template"),
                (Self.notice("n1", to: ["ann"], #""template": "order_shipped", "params": {"order": "A-1"}"#), "params.eta", "invalid_field"),
                (Self.notice("n1", to: ["ann"], #""text": "\#(String(repeating: "x", count: 17_000))""#), "text", "invalid_field"),
            ]
            for (body, field, code) in malformed {
                let answer = try await Self.call(region, "/notices", body: body)
                #expect(answer.status == 400 && answer.errorCode == code && answer.errorField == field, "\(body.prefix(80)): \(answer)")
            }
            // Nothing of the refused calls was stored.
            #expect(try region.postgres.psql("SELECT count(*) FROM messages") == "0")
        }
    }

    /// schemathesis (PyPI; ops/setup installs it) generates calls from
    /// openapi/platform.yaml (valid, invalid, undeclared methods, chains)
    /// and checks every answer against the document: status codes, bodies,
    /// content types, no 5xx. Left out: its check that every schema-valid
    /// call is accepted, since the document cannot say "exactly one of text
    /// and template" nor which templates a region has (docs/PLATFORM.md).
    @Test func schemathesisFindsNoAnswerThatBreaksTheDocument() async throws {
        try await LocalRegion.with { region in
            try await region.startExt(0)
            let document = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../openapi/platform.yaml").standardized.path
            let run = try ChildProcess(
                name: "schemathesis", executable: "/usr/bin/env",
                arguments: [
                    "python3", "-m", "schemathesis.cli", "run", document, "--url", region.platformURL,
                    "--header", "Authorization: Bearer \(Self.ordersToken)", "--checks", "all",
                    "--exclude-checks", "positive_data_acceptance", "--max-examples", "50", "--generation-deterministic",
                ],
                logPath: "\(region.directory)/schemathesis.log"
            )
            #expect(try await eventually(.seconds(150)) { !run.isRunning }, "schemathesis did not finish: \(run.log)")
            // Every case it generated passed ("N generated, N passed"), and no failure was listed.
            #expect(!run.log.contains("Failures:") && run.log.range(of: #"(\d+) generated, \1 passed"#, options: .regularExpression) != nil, "\(run.log)")
            #expect(run.log.contains("Tested: 3"), "every operation of the document was called: \(run.log)")
        }
    }

    @Test func aNoticeReachesItsReaderOnceShowsInHistoryAndReportsEveryUser() async throws {
        try await LocalRegion.with { region in
            try await region.startExt(0)
            let ann = try await region.connect("ann")
            let bob = try await region.connect("bob")
            await bob.stop()

            let first = try await Self.call(
                region, "/notices", body: Self.notice("ship-17", to: ["ann", "bob", "nobody", "not a user"], #""template": "order_shipped", "params": {"order": "A-17", "eta": "today"}"#)
            )
            #expect(first.status == 200, "\(first)")
            #expect(first.json?["notice_id"] as? String == "ship-17" && first.json?["posted"] as? Int == 2)
            #expect(first.results.map { $0["user_id"] as? String } == ["ann", "bob", "nobody", "not a user"], "in the order of to")
            #expect(first.status(of: "ann") == "posted" && first.status(of: "bob") == "posted")
            #expect(first.status(of: "nobody") == "unknown_user" && first.status(of: "not a user") == "unknown_user")

            let text = "Your order A-17 has shipped and arrives today."
            let conversation = ConversationID.direct("ann", "~orders")
            #expect(conversation == "d:ann:~orders")
            #expect(await ann.inbox.wait { $0.containsMessage(text) })

            // A retry reaches nobody twice, and says so.
            let retry = try await Self.call(
                region, "/notices", body: Self.notice("ship-17", to: ["ann", "bob"], #""template": "order_shipped", "params": {"order": "A-17", "eta": "today"}"#)
            )
            #expect(retry.status == 200 && retry.json?["posted"] as? Int == 0, "\(retry)")
            #expect(retry.status(of: "ann") == "duplicate" && retry.messageID(of: "ann") == first.messageID(of: "ann"))
            let another = try await Self.call(region, "/notices", body: Self.notice("ship-18", to: ["ann"], #""text": "A second notice""#))
            #expect(another.status(of: "ann") == "posted")
            #expect(await ann.inbox.wait { $0.containsMessage("A second notice") })
            let received = await ann.inbox.received
            #expect(received.count(ofMessage: text) == 1)
            for event in received where event.isMessage(text) {
                guard case .messagePosted(let posted) = event.event.kind else { continue }
                #expect(posted.sender == "~orders" && posted.conversationID == conversation)
            }

            // Bob, offline, finds it in history; the service is never a reader.
            let bobAgain = try await region.connect("bob", device: "d2")
            let page = try await bobAgain.client.history(conversationID: ConversationID.direct("bob", "~orders"))
            #expect(page.messages.map(\.messagePosted.body) == [text])
            #expect(try region.postgres.psql("SELECT count(*) FROM messages WHERE sender = '~orders'") == "3")
            // A notice cannot be answered: the service is not a user.
            await #expect(throws: ClientError.self) { _ = try await ann.client.send(to: .user("~orders"), body: "thanks") }
            await ann.stop()
            await bobAgain.stop()
        }
    }

    @Test func aNoticeReplicatesAndShowsInHistoryInEveryRegion() async throws {
        try await LocalCluster.with(["eu", "us"]) { cluster in
            let eu = cluster["eu"], us = cluster["us"]
            try await eu.startExt(0)
            let carl = try await us.connect("carl")
            // Carl signed in in us only: eu learns of him through replication.
            #expect(try await eventually { try eu.postgres.psql("SELECT count(*) FROM users WHERE user_id = 'carl'") == "1" })
            let answer = try await Self.call(eu, "/notices", body: Self.notice("pay-1", to: ["carl"], #""text": "Payment received""#))
            #expect(answer.status(of: "carl") == "posted", "\(answer)")
            #expect(await carl.inbox.wait(timeout: .seconds(20)) { $0.containsMessage("Payment received") }, "\(cluster.syncLogs)")
            let page = try await carl.client.history(conversationID: ConversationID.direct("carl", "~orders"))
            #expect(page.messages.map(\.messagePosted.body) == ["Payment received"])
            // The same notice retried in the other region is still the same send.
            try await us.startExt(0)
            let retry = try await Self.call(us, "/notices", body: Self.notice("pay-1", to: ["carl"], #""text": "Payment received""#))
            #expect(retry.status(of: "carl") == "duplicate", "\(retry)")
            #expect(try us.postgres.psql("SELECT count(*) FROM messages WHERE sender = '~orders'") == "1")
            await carl.stop()
        }
    }
}
