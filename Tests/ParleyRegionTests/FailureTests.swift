import Foundation
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Testing

/// Failures of the region's own parts, with real processes killed and restarted.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FailureTests {
    @Test func afterAGateRestartClientsReconnectAndResyncWithNothingLost() async throws {
        try await LocalRegion.with { region in
            let alice = try await region.connect("alice")
            let bob = try await region.connect("bob", via: .webSocket)
            _ = try await alice.client.send(to: .user("bob"), body: "before restart")
            #expect(await bob.inbox.wait { $0.containsMessage("before restart") })

            await region.stopGate()
            // Sent while the gate is down: the SDK retries with the same client_msg_id
            // until the gate is back.
            async let sent = alice.client.send(to: .user("bob"), body: "across restart")
            try await region.startGate()
            let ack = try await sent
            #expect(!ack.messageID.isEmpty)
            _ = try await alice.client.send(to: .user("bob"), body: "after restart")
            #expect(await bob.inbox.wait(timeout: .seconds(20)) {
                $0.containsMessage("across restart") && $0.containsMessage("after restart")
            })
            let received = await bob.inbox.received
            for body in ["before restart", "across restart", "after restart"] {
                #expect(received.count(ofMessage: body) == 1, "\(body) exactly once")
            }
            #expect(await bob.client.isConnected)
            await alice.stop()
            await bob.stop()
        }
    }

    @Test func whenALogicInstanceIsKilledTheGateRetriesOnTheOther() async throws {
        try await LocalRegion.with { region in
            // Enough users that both instances are some user's home.
            var users: [TestUser] = []
            for index in 0..<8 { users.append(try await region.connect("u\(index)")) }
            await region.killLogic(0)
            for (index, user) in users.enumerated() {
                let ack = try await user.client.send(to: .user(users[(index + 1) % users.count].id), body: "after kill \(index)")
                #expect(!ack.messageID.isEmpty)
            }
            for (index, user) in users.enumerated() {
                let from = (index + users.count - 1) % users.count
                #expect(await user.inbox.wait { $0.containsMessage("after kill \(from)") })
            }
            // A new sign-in works too, whichever instance is its home.
            let late = try await region.connect("late")
            _ = try await late.client.send(to: .user("u0"), body: "hello from late")
            #expect(await users[0].inbox.wait { $0.containsMessage("hello from late") })
            for user in users + [late] { await user.stop() }
        }
    }
}

extension FailureTests {
    /// A logic instance that hangs rather than dies (its commits wait on a
    /// lock another session holds): the device gets `timeout` (32) at the
    /// gate's deadline instead of waiting with it, and its retry, once logic
    /// recovers, is stored once.
    @Test func aHangingLogicIsAnsweredWithTimeoutAtTheGatesDeadline() async throws {
        try await LocalRegion.with(gateArguments: ["--logic-timeout-ms", "1500"]) { region in
            let alice = try await region.connect("alice")
            let bob = try await region.connect("bob")
            _ = try await alice.client.send(to: .user("bob"), body: "before")
            // Every commit locks its origin's counter row first.
            let holder = try region.postgres.psqlInBackground("BEGIN; SELECT * FROM origins FOR UPDATE; SELECT pg_sleep(8); COMMIT;")
            #expect(try await eventually {
                try region.postgres.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == "1"
            }, "the lock is held")
            let started = ContinuousClock.now
            let hung = Parley_Frame.with { $0.send = .with { $0.toUser = "bob"; $0.clientMsgID = "hung-1"; $0.body = "while hung" } }
            let timedOut = await #expect(throws: ClientError.self) { _ = try await alice.client.request(hung) }
            #expect(timedOut?.code == .timeout, "\(String(describing: timedOut))")
            let waited = ContinuousClock.now - started
            #expect(waited < .seconds(6), "answered at the 1.5 s deadline, not when the lock went (\(waited))")
            #expect(await alice.client.isConnected, "a timeout keeps the connection")
            // The SDK retries `timeout` with the same client_msg_id until logic answers.
            let ack = try await alice.client.send(to: .user("bob"), body: "while hung", clientMsgID: "hung-1")
            #expect(!ack.messageID.isEmpty)
            #expect(await bob.inbox.wait(timeout: .seconds(20)) { $0.containsMessage("while hung") })
            #expect(await bob.inbox.received.count(ofMessage: "while hung") == 1, "stored once")
            await holder.stop()
            await alice.stop()
            await bob.stop()
        }
    }
}

/// Bad input: the peer gets its documented code and is closed; everyone else is served.
@Suite(.serialized, .timeLimit(.minutes(3))) struct BadInputTests {
    @Test func badFramesAndBadTokensGetTheirCodesWhileOthersKeepChatting() async throws {
        // The default idle timeout (45 s): the chatting clients' heartbeats
        // never race it, however loaded the machine.
        try await LocalRegion.with(
            gateArguments: ["--max-frame-size", "4096", "--auth-timeout-ms", "1500"],
            logicArguments: ["--max-body-bytes", "2048", "--max-group-members", "3"]
        ) { region in
            let alice = try await region.connect("alice")
            let bob = try await region.connect("bob")
            let port = region.tcpPort

            func closing(_ bytes: [UInt8]) async throws -> Parley_Frame? {
                try await RawConnection.framesUntilClosed(port: port, after: [bytes]).last
            }
            func closingCode(_ bytes: [UInt8]) async throws -> UInt32? {
                try await closing(bytes)?.error.code
            }
            func authFrame(_ token: String) -> [UInt8] {
                RawConnection.framed(.with {
                    $0.requestID = 1
                    $0.auth = .with { $0.token = token; $0.deviceID = "raw" }
                })
            }

            // Malformed protobuf.
            #expect(try await closingCode(RawConnection.lengthPrefix(3) + [0xFF, 0xFF, 0xFF]) == 1)
            // A length over the limit: refused before the payload arrives.
            #expect(try await closingCode(RawConnection.lengthPrefix(1_000_000) + [0, 0]) == 2)
            // A body type this gate does not know (field 99).
            #expect(try await closingCode(RawConnection.lengthPrefix(3) + [0x9A, 0x06, 0x00]) == 3)
            // Anything but auth first; the answer carries the request's id.
            let notAuth = try await closing(RawConnection.framed(.with { $0.requestID = 7; $0.heartbeat = .init() }))
            #expect(notAuth?.error.code == 10 && notAuth?.requestID == 7)
            // Forged and expired tokens: refused with their codes, answering request 1.
            let forged = try await TokenAuthority(secret: "not-the-cluster-secret-but-long-enough").issue(userID: "mallory", lifetime: 60)
            let forgedAnswer = try await closing(authFrame(forged))
            #expect(forgedAnswer?.error.code == 11 && forgedAnswer?.requestID == 1, "\(String(describing: forgedAnswer))")
            let expired = try await region.token(for: "alice", lifetime: -10)
            let expiredAnswer = try await closing(authFrame(expired))
            #expect(expiredAnswer?.error.code == 12 && expiredAnswer?.requestID == 1, "\(String(describing: expiredAnswer))")

            // Never signing in: closed with auth_timeout at the sign-in deadline
            // (1.5 s here), long before the idle timeout; half a frame is no sign-in either.
            let started = ContinuousClock.now
            #expect(try await closingCode([]) == 15)
            #expect(try await closingCode(RawConnection.lengthPrefix(100) + [0x0A]) == 15)
            #expect(ContinuousClock.now - started < .seconds(20), "closed at the sign-in deadline, not the 45 s idle timeout")

            // Oversized over WebSocket gets the same code.
            let ws = ParleyClient(configuration: .init(gates: [region.address(.webSocket)], token: try await region.token(for: "big"), deviceID: "ws"))
            try await ws.connect()
            await #expect(throws: (any Error).self) {
                _ = try await ws.request(.with { $0.send = .with { $0.toUser = "alice"; $0.clientMsgID = "x"; $0.body = String(repeating: "x", count: 5000) } })
            }
            #expect(await ws.lastServerError?.code == .frameTooLarge)

            // Request-level errors keep the connection open.
            let unknownUser = await #expect(throws: ClientError.self) {
                _ = try await alice.client.send(to: .user("nobody"), body: "?")
            }
            #expect(unknownUser?.code == .unknownUser)
            let unknownGroup = await #expect(throws: ClientError.self) {
                _ = try await alice.client.send(to: .group("no-such-group"), body: "?")
            }
            #expect(unknownGroup?.code == .unknownConversation)
            let tooLong = await #expect(throws: ClientError.self) {
                _ = try await alice.client.send(to: .user("bob"), body: String(repeating: "y", count: 3000))
            }
            #expect(tooLong?.code == .payloadTooLarge)

            // Permission failures have their own code, not not_member.
            let hello = try await alice.client.send(to: .user("bob"), body: "mine")
            let editOthers = await #expect(throws: ClientError.self) {
                _ = try await bob.client.edit(messageID: hello.messageID, body: "bob's now")
            }
            #expect(editOthers?.code == .notPermitted)
            let carol = try await region.connect("carol")
            let dave = try await region.connect("dave")
            let group = try await alice.client.createGroup(name: "three", members: ["bob", "carol"])
            let kick = await #expect(throws: ClientError.self) {
                _ = try await bob.client.removeMember("carol", from: group.groupID)
            }
            #expect(kick?.code == .notPermitted)
            // The group size limit (3) holds on every path: creation and adding.
            let fourth = await #expect(throws: ClientError.self) {
                _ = try await bob.client.addMember("dave", to: group.groupID)
            }
            #expect(fourth?.code == .groupFull)
            let tooBig = await #expect(throws: ClientError.self) {
                _ = try await alice.client.createGroup(name: "four", members: ["bob", "carol", "dave"])
            }
            #expect(tooBig?.code == .groupFull)

            // Through all of that, alice and bob kept chatting.
            _ = try await alice.client.send(to: .user("bob"), body: "still here")
            #expect(await bob.inbox.wait { $0.containsMessage("still here") })
            let aliceConnected = await alice.client.isConnected
            let bobConnected = await bob.client.isConnected
            #expect(aliceConnected && bobConnected)
            for user in [alice, bob, carol, dave] { await user.stop() }
        }
    }

    /// Its own region: a short idle timeout there would race the heartbeats
    /// of every other client on a loaded machine.
    @Test func aSignedInConnectionSilentPastTheIdleTimeoutIsClosed() async throws {
        try await LocalRegion.with(gateArguments: ["--idle-timeout-ms", "1500"]) { region in
            let token = try await region.token(for: "quiet")
            let auth = RawConnection.framed(.with {
                $0.requestID = 1
                $0.auth = .with { $0.token = token; $0.deviceID = "raw" }
            })
            let frames = try await RawConnection.framesUntilClosed(port: region.tcpPort, after: [auth])
            #expect(frames.first.map { if case .authOk = $0.body { $0.requestID == 1 } else { false } } == true)
            #expect(frames.last?.error.code == 13)
        }
    }
}
