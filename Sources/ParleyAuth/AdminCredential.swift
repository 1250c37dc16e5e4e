import Crypto
import FoundationEssentials
import Hummingbird

/// The operator's bearer token for the admin surfaces: route's drain and
/// undrain, the link proxy's admin API, sync's status, metrics and digests
/// (docs/THREAT_MODEL.md, "Admin surfaces"). One token per deployment, from
/// PARLEY_ADMIN_TOKEN or `adminToken` in cluster.json.
///
/// Presented tokens are compared through their SHA-256 digests, so neither
/// the token's length nor its first differing byte shows in an answer's timing.
public struct AdminCredential: Sendable {
    private let digest: SHA256Digest

    /// The shortest token accepted: shorter ones can be guessed.
    public static let minimumTokenBytes = 16

    /// The token committed in regions/cluster.json for the local cluster
    /// (ops/up) only: anyone who read the repository knows it.
    public static let developmentToken = "parley-local-admin-token-change-me"

    public init(token: String) throws(AdminCredentialError) {
        guard token.utf8.count >= Self.minimumTokenBytes else { throw .tokenTooShort }
        digest = SHA256.hash(data: Data(token.utf8))
    }

    /// Whether an `Authorization` header's value carries the token.
    public func admits(authorization: String?) -> Bool {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return false }
        return SHA256.hash(data: Data(authorization.utf8.dropFirst("Bearer ".utf8.count))) == digest
    }

    /// The header a client sends with every admin request.
    public static func header(token: String) -> (name: String, value: String) {
        ("Authorization", "Bearer \(token)")
    }

    /// What to warn, loudly, when an admin surface is guarded by the
    /// development token while listening on any address but loopback.
    public static func developmentTokenWarning(token: String, listeningOn hosts: [String]) -> String? {
        guard token == developmentToken else { return nil }
        let exposed = hosts.filter { !isLoopback($0) }
        guard !exposed.isEmpty else { return nil }
        return "THE DEVELOPMENT ADMIN TOKEN IS IN USE on \(exposed.joined(separator: ", ")): anyone can drain regions and read digests. "
            + "Set PARLEY_ADMIN_TOKEN (or adminToken in cluster.json) to a token of your own; the committed one is for ops/up only."
    }
}

public enum AdminCredentialError: Error, CustomStringConvertible {
    case tokenTooShort

    public var description: String {
        switch self {
        case .tokenTooShort: "the admin token must be at least \(AdminCredential.minimumTokenBytes) bytes"
        }
    }
}

/// Refuses, with 401 and a `WWW-Authenticate: Bearer` challenge, any request
/// that does not carry the admin token; put it on the routes that need it.
public struct AdminOnly<Context: RequestContext>: RouterMiddleware {
    let credential: AdminCredential

    public init(_ credential: AdminCredential) { self.credential = credential }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard credential.admits(authorization: request.headers[.authorization]) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"parley-admin\""], message: "admin token required (Authorization: Bearer …)")
        }
        return try await next(request, context)
    }
}
