import Foundation
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import ParleyWire
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The HTTP long-poll transport (docs/PROTOCOL.md, "Long-poll") against a
/// real gate: by hand from the page, through the SDK, and across a failover.
@Suite(.serialized, .timeLimit(.minutes(3))) struct LongPollTests {
    struct Exchange {
        let status: Int
        let session: String?
        let last: UInt64?
        let frames: [Parley_Frame]
    }

    /// One long-poll request, written from the protocol page.
    static func request(
        _ region: LocalRegion, _ method: String, _ path: String, session: String? = nil, body: [UInt8]? = nil
    ) async throws -> Exchange {
        var request = URLRequest(url: URL(string: "http://\(region.file.gates[0].webSocket)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 60
        if let session { request.setValue(session, forHTTPHeaderField: "Parley-Session") }
        if let body {
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(body)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var frames: [Parley_Frame] = []
        var rest = [UInt8](data)[...]
        while rest.count >= 4 {
            let length = rest.prefix(4).reduce(0) { $0 << 8 | Int($1) }
            frames.append(try Parley_Frame(serializedBytes: Array(rest.dropFirst(4).prefix(length))))
            rest = rest.dropFirst(4 + length)
        }
        return Exchange(
            status: http.statusCode, session: http.value(forHTTPHeaderField: "Parley-Session"),
            last: http.value(forHTTPHeaderField: "Parley-Last").flatMap { UInt64($0) }, frames: frames
        )
    }

    @Test func aPollIsHeldUntilAFrameArrivesOrTheHoldPassesAndALostAnswerIsSentAgain() async throws {
        try await LocalRegion.with(gateArguments: ["--long-poll-hold-ms", "20000"]) { region in
            let bob = try await region.connect("bob", via: .webSocket)
            let token = try await region.token(for: "ann")
            let opened = try await Self.request(region, "POST", "/lp/send", body: RawConnection.framed(.with {
                $0.requestID = 1
                $0.auth = .with { $0.token = token; $0.deviceID = "lp" }
            }))
            #expect(opened.status == 202)
            let session = try #require(opened.session)

            let first = try await Self.request(region, "GET", "/lp/poll?after=0", session: session)
            #expect(first.status == 200 && first.last == 1 && first.frames.count == 1, "\(first)")
            #expect(first.frames.first?.requestID == 1 && first.frames.first?.authOk.userID == "ann")
            // The answer was lost on the way: the same poll gets the same frame.
            let again = try await Self.request(region, "GET", "/lp/poll?after=0", session: session)
            #expect(again.last == 1 && again.frames == first.frames)

            // Nothing to send: held for the time asked (wait_ms), then answered empty.
            let started = ContinuousClock.now
            let empty = try await Self.request(region, "GET", "/lp/poll?after=1&wait_ms=1500", session: session)
            #expect(empty.status == 200 && empty.frames.isEmpty && empty.last == 1)
            #expect(ContinuousClock.now - started >= .milliseconds(1_400))

            // Held until a push arrives: long before the 20 s hold.
            let poll = Task { try await Self.request(region, "GET", "/lp/poll?after=1", session: session) }
            let heldSince = ContinuousClock.now
            _ = try await bob.client.send(to: .user("ann"), body: "to the long-poll")
            let pushed = try await poll.value
            #expect(ContinuousClock.now - heldSince < .seconds(10))
            #expect(pushed.frames.map(\.push.event.messagePosted.body) == ["to the long-poll"] && pushed.last == 2, "\(pushed)")

            // Requests go up in POSTs; their answers come down in polls, in order.
            let sends = (0..<3).flatMap { index in
                RawConnection.framed(.with {
                    $0.requestID = 10 + UInt64(index)
                    $0.send = .with { $0.clientMsgID = "lp-\(index)"; $0.toUser = "bob"; $0.body = "from long-poll \(index)" }
                })
            }
            #expect(try await Self.request(region, "POST", "/lp/send", session: session, body: sends).status == 202)
            var answers: [Parley_Frame] = []
            var after: UInt64 = 2
            while answers.count < 3 {
                let next = try await Self.request(region, "GET", "/lp/poll?after=\(after)", session: session)
                answers += next.frames.filter { $0.requestID != 0 }
                after = try #require(next.last)
            }
            #expect(answers.map(\.requestID) == [10, 11, 12] && answers.allSatisfy { $0.sendAck.clientMsgID.hasPrefix("lp-") })
            #expect(await bob.inbox.wait { events in (0..<3).allSatisfy { events.containsMessage("from long-poll \($0)") } })

            // Bytes that are not a frame: the session's last frame is the error, then 410.
            #expect(try await Self.request(region, "POST", "/lp/send", session: session, body: RawConnection.lengthPrefix(3) + [0xFF, 0xFF, 0xFF]).status == 202)
            var last: Parley_Frame?
            var status = 200
            while status == 200 {
                let next = try await Self.request(region, "GET", "/lp/poll?after=\(after)", session: session)
                status = next.status
                if let frame = next.frames.last { last = frame }
                after = next.last ?? after
            }
            #expect(status == 410 && last?.error.code == 1, "\(String(describing: last))")
            #expect(try await Self.request(region, "GET", "/lp/poll?after=0", session: "no-such-session").status == 410)
            #expect(try await Self.request(region, "POST", "/lp/send", session: "no-such-session", body: sends).status == 410)

            // A first frame that is not auth: refused with auth_required, answering its request.
            let notAuth = try await Self.request(region, "POST", "/lp/send", body: RawConnection.framed(.with { $0.requestID = 7; $0.heartbeat = .init() }))
            let notAuthSession: String = try #require(notAuth.session)
            let refused = try await Self.request(region, "GET", "/lp/poll?after=0", session: notAuthSession)
            #expect(refused.frames.last?.error.code == 10 && refused.frames.last?.requestID == 7, "\(refused)")
            await bob.stop()
        }
    }

    @Test func aLongPollClientAndAWebSocketClientChatInOrderAndOnce() async throws {
        try await LocalRegion.with { region in
            let ann = try await region.connect("ann", via: .longPoll)
            let bob = try await region.connect("bob", via: .webSocket)
            for index in 0..<20 {
                _ = try await ann.client.send(to: .user("bob"), body: "ann \(index)")
                _ = try await bob.client.send(to: .user("ann"), body: "bob \(index)")
            }
            // Pipelined: many sends in flight on one long-poll session.
            try await withThrowingTaskGroup { group in
                for index in 0..<30 { group.addTask { _ = try await ann.client.send(to: .user("bob"), body: "burst \(index)") } }
                try await group.waitForAll()
            }
            #expect(await ann.inbox.wait { events in (0..<20).allSatisfy { events.containsMessage("bob \($0)") } })
            #expect(await bob.inbox.wait { events in (0..<20).allSatisfy { events.containsMessage("ann \($0)") } && (0..<30).allSatisfy { events.containsMessage("burst \($0)") } })
            let annSaw = await ann.inbox.messageBodies.filter { $0.hasPrefix("bob ") }
            #expect(annSaw == (0..<20).map { "bob \($0)" }, "in order, once")
            let bobSaw = await bob.inbox.messageBodies.filter { $0.hasPrefix("ann ") }
            #expect(bobSaw == (0..<20).map { "ann \($0)" }, "in order, once")
            #expect(await bob.inbox.messageBodies.filter { $0.hasPrefix("burst ") }.count == 30)
            // History over long-poll, as over any transport.
            let page = try await ann.client.history(conversationID: ConversationID.direct("ann", "bob"), limit: 5)
            #expect(page.messages.count == 5)
            await ann.stop()
            await bob.stop()
        }
    }

    @Test func aLongPollClientInARegionThatIsKilledFailsOverWithItsCursorNothingLostOrTwice() async throws {
        try await LocalCluster.with(["eu", "us"]) { cluster in
            let eu = cluster["eu"], us = cluster["us"]
            let configuration = ParleyClient.Configuration(
                gates: [eu.address(.longPoll), us.address(.longPoll)], token: try await eu.token(for: "ann"), deviceID: "browser"
            )
            let client = ParleyClient(configuration: configuration)
            let inbox = Inbox()
            let reader = Task { await inbox.collect(from: client) }
            try await client.connect()
            let bob = try await us.connect("bob")
            #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } },
                    "\(cluster.syncLogs)")
            for index in 0..<5 { _ = try await bob.client.send(to: .user("ann"), body: "before \(index)") }
            #expect(await inbox.wait(timeout: .seconds(20)) { events in (0..<5).allSatisfy { events.containsMessage("before \($0)") } })

            await eu.killAll()
            for index in 0..<5 { _ = try await bob.client.send(to: .user("ann"), body: "during \(index)") }
            #expect(try await eventually(.seconds(60)) {
                let recovered = await !client.recoveries.isEmpty
                let connected = await client.isConnected
                return recovered && connected
            })
            _ = try await client.send(to: .user("bob"), body: "ann from us")
            for index in 0..<5 { _ = try await bob.client.send(to: .user("ann"), body: "after \(index)") }
            let expected = (0..<5).flatMap { ["before \($0)", "during \($0)", "after \($0)"] }
            #expect(await inbox.wait(timeout: .seconds(30)) { events in expected.allSatisfy { events.containsMessage($0) } })
            for body in expected { #expect(await inbox.received.count(ofMessage: body) == 1, "\(body) once") }
            #expect(await bob.inbox.wait { $0.containsMessage("ann from us") })
            await client.disconnect()
            reader.cancel()
            await bob.stop()
        }
    }
}
