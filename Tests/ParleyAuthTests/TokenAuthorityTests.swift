import Foundation
import ParleyAuth
import Testing

private let sharedSecret = "0123456789abcdef0123456789abcdef-shared"

@Suite struct TokenAuthorityTests {
    @Test func aShortSecretIsRefused() async {
        await #expect(throws: TokenAuthorityError.self) { _ = try await TokenAuthority(secret: "short") }
    }

    @Test func aTokenNamesItsUserInEveryRegionSharingTheSecret() async throws {
        let issuer = try await TokenAuthority(secret: sharedSecret)
        let otherRegion = try await TokenAuthority(secret: sharedSecret)
        let token = try await issuer.issue(userID: "alice", lifetime: 60)
        #expect(try await otherRegion.verify(token) == "alice")
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
