import Crypto
import Foundation
import ParleyCore

/// Which business system a bearer token belongs to. Tokens are compared in
/// constant time, through their SHA-256 digests, so neither a token's
/// length nor its first differing byte shows in the answer's timing.
public struct ServiceTokens: Sendable {
    private let services: [(digest: SHA256Digest, service: String)]

    /// `tokens`: service name (of `Naming`'s alphabet) → token.
    public init(_ tokens: [String: String]) throws {
        for (service, token) in tokens where !Naming.isValid(service) || token.isEmpty {
            throw ServiceTokenError(text: "\(service)=…")
        }
        services = tokens.sorted { $0.key < $1.key }.map { (SHA256.hash(data: Data($0.value.utf8)), $0.key) }
    }

    /// `orders=token1,support=token2`, as in PARLEY_SERVICE_TOKENS.
    public init(parsing list: String) throws {
        var tokens: [String: String] = [:]
        for pair in list.split(separator: ",") {
            guard let equals = pair.firstIndex(of: "="), !pair[..<equals].isEmpty, pair.index(after: equals) < pair.endIndex else {
                throw ServiceTokenError(text: String(pair))
            }
            tokens[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        try self.init(tokens)
    }

    public var isEmpty: Bool { services.isEmpty }

    /// The service whose token this is, or nil.
    public func service(for token: String) -> String? {
        let digest = SHA256.hash(data: Data(token.utf8))
        var found: String?
        // Every entry is compared, whichever matches.
        for entry in services where entry.digest == digest { found = entry.service }
        return found
    }
}

public struct ServiceTokenError: Error, CustomStringConvertible {
    public let text: String
    public var description: String { "not a service=token pair (service of [A-Za-z0-9_.], token not empty): \(text)" }
}
