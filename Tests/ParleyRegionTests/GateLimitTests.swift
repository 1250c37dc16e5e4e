import Foundation
import NIOCore
import NIOPosix
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyWire
import Synchronization
import Testing

/// What a gate holds every connection to: a token that expires on open
/// connections too (docs/PROTOCOL.md, "Sessions and tokens"), and a bound on
/// what may wait for a peer that reads too slowly.
@Suite(.serialized, .timeLimit(.minutes(6))) struct GateLimitTests {
    @Test func anExpiredTokenIsToldThenClosedUnlessAFreshOneComesOnTheSameConnection() async throws {
        // A 2 s grace after expiry; five-second tokens, so a loaded machine still signs in with them.
        try await LocalRegion.with(gateArguments: ["--reauth-grace-ms=2000"]) { region in
            let bob = try await region.connect("bob")
            let lifetime = 5.0

            // The SDK with a source of fresh tokens keeps one connection across several expiries.
            let issued = Atomic(0)
            var renewing = ParleyClient.Configuration(gates: [region.address(.tcp)], token: try await region.token(for: "alice", lifetime: lifetime), deviceID: "renewing")
            renewing.freshToken = {
                issued.add(1, ordering: .relaxed)
                return try await region.token(for: "alice", lifetime: lifetime)
            }
            let alice = ParleyClient(configuration: renewing)
            let signedIn = try await alice.connect()
            #expect(signedIn.tokenExpiresAtMs > WallClock.milliseconds() && signedIn.tokenExpiresAtMs <= WallClock.milliseconds() + 6_000,
                    "auth_ok says when the token expires: \(signedIn.tokenExpiresAtMs)")

            // Without one, the connection is closed with token_expired after the grace.
            var lapsing = ParleyClient.Configuration(gates: [region.address(.tcp)], token: try await region.token(for: "carol", lifetime: lifetime), deviceID: "lapsing")
            lapsing.reconnects = false
            let carol = ParleyClient(configuration: lapsing)
            try await carol.connect()

            // A token that is not a fresh one for this connection is refused, and the connection goes on.
            let forged = try await TokenAuthority(secret: "not-the-cluster-secret-but-long-enough").issue(userID: "alice", lifetime: 60)
            #expect(await refusal { try await alice.request(.with { $0.auth = .with { $0.token = forged } }) } == .tokenInvalid)
            let bobs = try await region.token(for: "bob")
            #expect(await refusal { try await alice.request(.with { $0.auth = .with { $0.token = bobs } }) } == .tokenInvalid,
                    "another user's token")
            let expired = try await region.token(for: "alice", lifetime: -10)
            #expect(await refusal { try await alice.request(.with { $0.auth = .with { $0.token = expired } }) } == .tokenExpired)
            _ = try await alice.send(to: .user("bob"), body: "still signed in")

            #expect(try await eventually {
                let closedWith = await carol.lastServerError?.code
                let open = await carol.isConnected
                return closedWith == .tokenExpired && !open
            }, "closed with token_expired")
            #expect(try await eventually { issued.load(ordering: .relaxed) >= 2 }, "asked for a fresh token at each expiry")
            _ = try await alice.send(to: .user("bob"), body: "after two renewals")
            let connected = await alice.isConnected
            let recoveries = await alice.recoveries
            let lastError = await alice.lastServerError
            #expect(connected && recoveries.isEmpty, "the same connection throughout")
            #expect(lastError == nil)
            #expect(await bob.inbox.wait { $0.containsMessage("after two renewals") })
            await alice.disconnect()
            await bob.stop()
        }
    }

    @Test func aReaderTooSlowForItsPushesIsEvictedWithoutTheGateHoldingThemAndLosesNothing() async throws {
        try await LocalRegion.with(gateArguments: ["--max-outbox-frames=64", "--logic-timeout-ms=60000"]) { region in
            // Acks wait behind 18 MiB of pushes that a debug build decodes slowly on a busy machine.
            let flooder = try await region.connect("flooder", requestTimeout: .seconds(60))
            #expect(try await eventually {
                try region.postgres.psql("SELECT count(*) FROM users WHERE user_id = 'flooder'") == "1"
            })
            let body = String(repeating: "z", count: 12 * 1024)
            // The gate's memory is measured once it has carried pushes like these to a device that reads them.
            let reader = try await region.connect("reader")
            for index in 0..<300 { _ = try await flooder.client.send(to: .user("reader"), body: "\(index) \(body)") }
            #expect(await reader.inbox.wait(timeout: .seconds(60)) { $0.containsMessage("299 \(body)") })
            await reader.stop()
            let gatePID = try #require(region.gate?.pid)
            let rssBefore = try Self.residentBytes(of: gatePID)
            let total = 1_500
            // A device that signs in, then reads nothing: a small receive buffer, and
            // NIOAsyncChannel reads only a few frames ahead of a consumer that never comes.
            // Connected only now, so the gate's sign-in deadline cannot pass during the warm-up.
            let slow = try await ClientBootstrap(group: .singletonMultiThreadedEventLoopGroup)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(host: "127.0.0.1", port: region.tcpPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 24)))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let signedIn = try await region.token(for: "slow")
            try await slow.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(bytes: RawConnection.signIn(token: signedIn)))
                #expect(try await eventually { try region.postgres.psql("SELECT count(*) FROM users WHERE user_id = 'slow'") == "1" })
                // 18 MiB of pushes for it, sent by eight writers at once: every one acknowledged.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<8 {
                        group.addTask {
                            for index in stride(from: writer, to: total, by: 8) {
                                _ = try await flooder.client.send(to: .user("slow"), body: "\(index) \(body)")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let growth = try Self.residentBytes(of: gatePID) - rssBefore
                // Reading now: what the socket buffers held, then the end of the connection
                // (a reset when the gate closed with bytes still unsent).
                var pushes = 0
                do {
                    for try await payload in inbound where (try Parley_Frame.decode(payload)).push.hasEvent { pushes += 1 }
                } catch let error as IOError {
                    #expect(error.errnoCode == ECONNRESET, "\(error)")
                }
                #expect(pushes < total, "evicted: \(pushes) of \(total) pushes reached it")
                // A gate that kept what the peer did not read would have grown by all of it.
                let unread = (total - pushes) * body.utf8.count
                #expect(growth < unread / 2, "the gate grew by \(growth >> 10) KiB while \(unread >> 10) KiB went unread")
            }
            // Signed in again, the device syncs every message: nothing was lost.
            // 18 MiB of sync pages, which a debug build on a busy machine decodes slowly.
            let back = try await region.connect("slow", device: "raw", requestTimeout: .seconds(120))
            #expect(await back.inbox.wait(timeout: .seconds(120)) { events in
                events.filter { if case .messagePosted = $0.event.kind { true } else { false } }.count == total
            })
            await back.stop()
            await flooder.stop()
        }
    }

    /// A process's resident set, from /proc.
    private static func residentBytes(of pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw TestSupportError("no VmRSS for \(pid)") }
        return kib * 1024
    }
}
