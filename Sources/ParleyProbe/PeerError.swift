/// Why an exchange with another process failed: a health probe, a route or
/// link-proxy admin request, the checker's digest requests. The one error of
/// the operator tools' network layer; `description` names the peer and what
/// happened, for an operator's terminal or a health report.
public struct PeerError: Error, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case badAddress
        /// Could not connect, or the connection failed.
        case unreachable
        /// Took no connection within the timeout (a host cut off, a listener
        /// not accepting); `timedOut` is a connection made but answered late.
        case noConnection
        case timedOut
        /// Answered with this HTTP status instead of success.
        case refused(status: Int)
        /// Answered, but not in its API's terms.
        case malformedAnswer
    }

    public let kind: Kind
    /// Who: "route at 127.0.0.1:9300", "redis".
    public let peer: String
    public let detail: String

    public init(_ kind: Kind, peer: String, _ detail: String = "") {
        self.kind = kind
        self.peer = peer
        self.detail = detail
    }

    public var description: String {
        let what =
            switch kind {
            case .badAddress: "is not a valid address"
            case .unreachable: "is unreachable"
            case .noConnection: "took no connection in time"
            case .timedOut: "did not answer in time"
            case .refused(let status): "answered \(status)"
            case .malformedAnswer: "answered outside its API"
            }
        return detail.isEmpty ? "\(peer) \(what)" : "\(peer) \(what): \(detail)"
    }
}
