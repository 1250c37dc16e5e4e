import FoundationEssentials
import JWTKit

/// Issues and verifies the signed, expiring tokens that devices present to a
/// gate. Every region shares the signing secret, so a token issued anywhere is
/// valid everywhere (a device that fails over re-authenticates as it is).
public struct TokenAuthority: Sendable {
    private let keys: JWTKeyCollection

    /// The shortest secret accepted: HMAC-SHA256 keys shorter than the hash are weak.
    public static let minimumSecretBytes = 32

    /// The secret committed in regions/cluster.json for the local cluster
    /// (ops/up) only: anyone who read the repository can sign tokens with it.
    public static let developmentSecret = "parley-local-development-secret-change-me"

    /// What to warn, loudly, when a server signs with the development secret
    /// while listening on any address but loopback (`hosts`): nil otherwise.
    public static func developmentSecretWarning(secret: String, listeningOn hosts: [String]) -> String? {
        guard secret == developmentSecret else { return nil }
        let exposed = hosts.filter { !isLoopback($0) }
        guard !exposed.isEmpty else { return nil }
        return "THE DEVELOPMENT TOKEN SECRET IS IN USE on \(exposed.joined(separator: ", ")): anyone can sign a token for any user. "
            + "Set PARLEY_TOKEN_SECRET (or tokenSecret in cluster.json) to a secret of your own; the committed one is for ops/up only."
    }

    public init(secret: String) async throws(TokenAuthorityError) {
        guard secret.utf8.count >= Self.minimumSecretBytes else { throw .secretTooShort }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
    }

    /// A token for `userID`, valid for `lifetime` seconds from `now`.
    public func issue(userID: String, lifetime: TimeInterval, now: Date = Date()) async throws -> String {
        let claims = ParleyClaims(
            sub: SubjectClaim(value: userID),
            exp: ExpirationClaim(value: now.addingTimeInterval(lifetime)),
            iat: IssuedAtClaim(value: now)
        )
        return try await keys.sign(claims)
    }

    /// The user a token names and when it expires, or why it is refused.
    public func verify(_ token: String) async throws(TokenRejection) -> VerifiedToken {
        do {
            let claims = try await keys.verify(token, as: ParleyClaims.self)
            return VerifiedToken(
                userID: claims.sub.value, expiresAtMilliseconds: UInt64(max(0, (claims.exp.value.timeIntervalSince1970 * 1000).rounded())),
                issuedAtMilliseconds: UInt64(max(0, (claims.iat.value.timeIntervalSince1970 * 1000).rounded()))
            )
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            throw .expired
        } catch {
            throw .invalid
        }
    }
}

public enum TokenAuthorityError: Error, Sendable, CustomStringConvertible {
    case secretTooShort

    public var description: String {
        "the token secret must be at least \(TokenAuthority.minimumSecretBytes) bytes"
    }
}

/// What a valid token says.
public struct VerifiedToken: Sendable, Equatable {
    public var userID: String
    /// Wall clock, milliseconds since 1970.
    public var expiresAtMilliseconds: UInt64
    /// When it was issued (wall clock, ms since 1970): a revocation refuses
    /// the tokens issued until it.
    public var issuedAtMilliseconds: UInt64
}

/// Why a token was refused.
public enum TokenRejection: Error, Sendable, Equatable {
    /// Unsigned, forged, malformed or for another key.
    case invalid
    /// Correctly signed but past its expiry.
    case expired
}

struct ParleyClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Whether `host` (a listening address) reaches only this machine.
func isLoopback(_ host: String) -> Bool {
    host == "localhost" || host == "::1" || host.hasPrefix("127.")
}
