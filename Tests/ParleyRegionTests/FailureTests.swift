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

/// Bad input: the peer gets its documented code and is closed; everyone else is served.
@Suite(.serialized, .timeLimit(.minutes(3))) struct BadInputTests {
    @Test func badFramesAndBadTokensGetTheirCodesWhileOthersKeepChatting() async throws {
        try await LocalRegion.with(
            gateArguments: ["--max-frame-size", "4096", "--idle-timeout-ms", "1500"],
            logicArguments: ["--max-body-bytes", "2048"]
        ) { region in
            let alice = try await region.connect("alice")
            let bob = try await region.connect("bob")
            let port = region.tcpPort

            func closingCode(_ bytes: [UInt8]) async throws -> UInt32? {
                try await RawConnection.framesUntilClosed(port: port, after: [bytes]).last?.error.code
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
            // Anything but auth first.
            #expect(try await closingCode(RawConnection.framed(.with { $0.heartbeat = .init() })) == 10)
            // Forged and expired tokens.
            let forged = try await TokenAuthority(secret: "not-the-cluster-secret-but-long-enough").issue(userID: "mallory", lifetime: 60)
            #expect(try await closingCode(authFrame(forged)) == 11)
            let expired = try await region.token(for: "alice", lifetime: -10)
            #expect(try await closingCode(authFrame(expired)) == 12)
            // Signed in, then silent past the idle timeout.
            let idleFrames = try await RawConnection.framesUntilClosed(port: port, after: [authFrame(try await region.token(for: "quiet"))])
            #expect(idleFrames.first.map { if case .authOk = $0.body { true } else { false } } == true)
            #expect(idleFrames.last?.error.code == 13)

            // Oversized over WebSocket gets the same code.
            let ws = ParleyClient(configuration: .init(gates: [region.address(.webSocket)], token: try await region.token(for: "big"), deviceID: "ws"))
            try await ws.connect()
            await #expect(throws: (any Error).self) {
                _ = try await ws.request(.with { $0.send = .with { $0.toUser = "alice"; $0.clientMsgID = "x"; $0.body = String(repeating: "x", count: 5000) } })
            }
            #expect(await ws.lastServerError?.code == .frameTooLarge)

            // Request-level errors keep the connection open.
            let unknownUser = await #expect(throws: ServerError.self) {
                _ = try await alice.client.send(to: .user("nobody"), body: "?")
            }
            #expect(unknownUser?.code == .unknownUser)
            let unknownGroup = await #expect(throws: ServerError.self) {
                _ = try await alice.client.send(to: .group("no-such-group"), body: "?")
            }
            #expect(unknownGroup?.code == .unknownConversation)
            let tooLong = await #expect(throws: ServerError.self) {
                _ = try await alice.client.send(to: .user("bob"), body: String(repeating: "y", count: 3000))
            }
            #expect(tooLong?.code == .payloadTooLarge)

            // Through all of that, alice and bob kept chatting (heartbeats keep them past the idle timeout).
            _ = try await alice.client.send(to: .user("bob"), body: "still here")
            #expect(await bob.inbox.wait { $0.containsMessage("still here") })
            let aliceConnected = await alice.client.isConnected
            let bobConnected = await bob.client.isConnected
            #expect(aliceConnected && bobConnected)
            await alice.stop()
            await bob.stop()
        }
    }
}
