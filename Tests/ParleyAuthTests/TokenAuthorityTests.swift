import Foundation
import ParleyAuth
import ParleyDeployment
import Testing

private let sharedSecret = "0123456789abcdef0123456789abcdef-shared"

@Suite struct TokenAuthorityTests {
    @Test func theCommittedDevelopmentSecretIsFlaggedOffLoopbackOnly() {
        let dev = TokenAuthority.developmentSecret
        #expect(TokenAuthority.developmentSecretWarning(secret: dev, listeningOn: ["127.0.0.1", "localhost", "::1"]) == nil)
        let exposed = TokenAuthority.developmentSecretWarning(secret: dev, listeningOn: ["127.0.0.1", "0.0.0.0"])
        #expect(exposed?.contains("0.0.0.0") == true && exposed?.contains("PARLEY_TOKEN_SECRET") == true)
        #expect(TokenAuthority.developmentSecretWarning(secret: sharedSecret, listeningOn: ["0.0.0.0"]) == nil)
    }

    @Test func theCommittedClusterFileUsesTheDevelopmentSecret() throws {
        // The constant and the file must agree, or the warning never fires.
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../regions/cluster.json")
        let cluster = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        #expect(cluster?["tokenSecret"] as? String == TokenAuthority.developmentSecret)
    }

    /// Revocations compare issue times in milliseconds: the token keeps them.
    @Test func aTokenSaysWhenItWasIssuedToTheMillisecond() async throws {
        let authority = try await TokenAuthority(secret: sharedSecret)
        let issued = Date(timeIntervalSince1970: 1_900_000_000.123)
        let token = try await authority.issue(userID: "ann", lifetime: 3_600 * 24 * 365 * 100, now: issued)
        #expect(try await authority.verify(token).issuedAtMilliseconds == 1_900_000_000_123)
    }

    @Test func aShortSecretIsRefused() async {
        await #expect(throws: TokenAuthorityError.self) { _ = try await TokenAuthority(secret: "short") }
    }

    @Test func aTokenNamesItsUserInEveryRegionSharingTheSecret() async throws {
        let issuer = try await TokenAuthority(secret: sharedSecret)
        let otherRegion = try await TokenAuthority(secret: sharedSecret)
        let now = Date()
        let token = try await issuer.issue(userID: "alice", lifetime: 60, now: now)
        let verified = try await otherRegion.verify(token)
        #expect(verified.userID == "alice")
        // JWT expiry has whole seconds.
        #expect(verified.expiresAtMilliseconds / 1000 == UInt64((now.timeIntervalSince1970 + 60).rounded(.down)))
    }

    @Test func expiredForgedAndGarbageTokensAreRefusedWithTheirReason() async throws {
        let authority = try await TokenAuthority(secret: sharedSecret)
        let expired = try await authority.issue(userID: "alice", lifetime: 60, now: Date().addingTimeInterval(-120))
        await #expect(throws: TokenRejection.expired) { try await authority.verify(expired) }
        let forged = try await TokenAuthority(secret: String(repeating: "a", count: 32)).issue(userID: "alice", lifetime: 60)
        await #expect(throws: TokenRejection.invalid) { try await authority.verify(forged) }
        await #expect(throws: TokenRejection.invalid) { try await authority.verify("not.a.token") }
        await #expect(throws: TokenRejection.invalid) { try await authority.verify("") }
    }
}
