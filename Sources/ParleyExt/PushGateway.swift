import Crypto
import FoundationEssentials
import ParleyCore
import ParleyProbe
import ParleyStore

/// The region's push gateway: an HTTP endpoint of the operator's that turns
/// Parley's notifications into APNs, FCM or anything else
/// (docs/OPERATIONS.md, "Offline push"). Each call is a JSON POST signed
/// with HMAC-SHA256 over the timestamp and the body, so the gateway can
/// refuse anything that does not come from this region's ext.
public struct PushGateway: Sendable {
    /// `host:port` and path of an `http://` URL.
    public let address: String
    public let path: String
    let secret: SymmetricKey

    /// The shortest secret accepted: HMAC-SHA256 keys shorter than the hash are weak.
    public static let minimumSecretBytes = 32

    public init(url: String, secret: String) throws {
        guard url.hasPrefix("http://") else {
            throw ExtError("push gateway \(url): only http:// URLs (put a TLS proxy on the loopback in front of an https gateway)")
        }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let address = String(rest[..<slash])
        guard (try? Endpoint(address)) != nil else { throw ExtError("push gateway \(url): not host:port") }
        guard secret.utf8.count >= Self.minimumSecretBytes else {
            throw ExtError("push gateway secret: at least \(Self.minimumSecretBytes) bytes")
        }
        self.address = address
        self.path = slash == rest.endIndex ? "/" : String(rest[slash...])
        self.secret = SymmetricKey(data: Array(secret.utf8))
    }

    /// The body of a call, as the gateway reads it.
    public struct Notification: Codable, Sendable, Equatable {
        /// The same on every retry of one notification: the gateway's key for deduplication.
        public var notificationID: String
        public var region: String
        public var userID: String
        public var deviceID: String
        public var token: String
        /// Messages collapsed into this notification.
        public var messages: Int
        public var latest: Latest
        public var attempt: Int

        public struct Latest: Codable, Sendable, Equatable {
            public var messageID: String
            public var conversationID: String
            public var sender: String
            public var preview: String
        }

        enum CodingKeys: String, CodingKey {
            case notificationID = "notification_id", region, userID = "user_id", deviceID = "device_id", token, messages, latest, attempt
        }
    }

    /// The signature header's value for `body` sent at `timestamp` (Unix seconds).
    public static func signature(body: String, timestamp: Int, secret: SymmetricKey) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(timestamp).\(body)".utf8), using: secret)
        return "v1=" + mac.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// Whether `signature` signs `body` sent at `timestamp` with `secret`:
    /// what a gateway checks before it trusts a call.
    public static func verify(body: String, timestamp: Int, signature: String, secret: String) -> Bool {
        let expected = Self.signature(body: body, timestamp: timestamp, secret: SymmetricKey(data: Array(secret.utf8)))
        // Compared in constant time: a timing difference would leak the signature byte by byte.
        guard expected.utf8.count == signature.utf8.count else { return false }
        return zip(expected.utf8, signature.utf8).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// POSTs one notification; the gateway's status code.
    func send(_ notification: Notification, timeout: Duration) async throws -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = String(decoding: try encoder.encode(notification), as: UTF8.self)
        let timestamp = Int(WallClock.milliseconds() / 1000)
        let answer = try await TCPProbe.http(
            "POST", address, path: path,
            headers: [
                ("Content-Type", "application/json"),
                ("X-Parley-Timestamp", String(timestamp)),
                ("X-Parley-Signature", Self.signature(body: body, timestamp: timestamp, secret: secret)),
                ("X-Parley-Notification", notification.notificationID),
            ],
            body: body, timeout: timeout
        )
        return answer.status
    }
}

public struct ExtError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
