import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import Synchronization
import Testing

/// Tokens on open connections (docs/PROTOCOL.md, "Sessions and tokens"):
/// a connection lives no longer than its token unless it presents a fresh one.
@Suite(.serialized, .timeLimit(.minutes(3))) struct SessionTokenTests {
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
}
