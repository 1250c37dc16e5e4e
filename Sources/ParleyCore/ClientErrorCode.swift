/// The stable numeric error codes a device can receive (docs/PROTOCOL.md).
///
/// A struct rather than an enum so new codes never break callers.
public struct ClientErrorCode: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    /// Whether the gate closes the connection after sending this error.
    public var closesConnection: Bool { rawValue < 20 }

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Framing: the connection is closed after these.
    public static let malformedFrame = ClientErrorCode(rawValue: 1)
    public static let frameTooLarge = ClientErrorCode(rawValue: 2)
    public static let unknownFrameType = ClientErrorCode(rawValue: 3)
    // Authentication: the connection is closed after these.
    public static let authRequired = ClientErrorCode(rawValue: 10)
    public static let tokenInvalid = ClientErrorCode(rawValue: 11)
    public static let tokenExpired = ClientErrorCode(rawValue: 12)
    public static let idleTimeout = ClientErrorCode(rawValue: 13)
    /// The gate is shutting down: reconnect, to any gate.
    public static let goingAway = ClientErrorCode(rawValue: 14)
    /// No valid `auth` within the gate's sign-in deadline.
    public static let authTimeout = ClientErrorCode(rawValue: 15)
    /// The peer read too slowly: the frames waiting for it reached the gate's
    /// limit. Reconnect and sync from the cursor.
    public static let slowConsumer = ClientErrorCode(rawValue: 16)
    /// The client's address already holds the gate's cap of open connections.
    public static let tooManyConnections = ClientErrorCode(rawValue: 17)
    /// The token was revoked (the user signed out that device, or every
    /// device, after it was issued): sign in with a token issued since.
    public static let tokenRevoked = ClientErrorCode(rawValue: 18)
    // Requests: the connection stays open.
    public static let unknownUser = ClientErrorCode(rawValue: 20)
    public static let notMember = ClientErrorCode(rawValue: 21)
    public static let unknownConversation = ClientErrorCode(rawValue: 22)
    public static let invalidRequest = ClientErrorCode(rawValue: 23)
    public static let payloadTooLarge = ClientErrorCode(rawValue: 24)
    /// The user may not do this to this message or group (edit another's
    /// message, remove another member without being the owner).
    public static let notPermitted = ClientErrorCode(rawValue: 25)
    /// The group already has its configured maximum of members.
    public static let groupFull = ClientErrorCode(rawValue: 26)
    /// The other user blocked this one: no message, invitation or friend request.
    public static let blocked = ClientErrorCode(rawValue: 27)
    /// No friend request from that user is waiting for an answer.
    public static let noRequest = ClientErrorCode(rawValue: 28)
    /// The group was dissolved: it takes no more messages or changes.
    public static let groupDissolved = ClientErrorCode(rawValue: 29)
    /// The sender is muted in this group (by an admin, or the whole group).
    public static let muted = ClientErrorCode(rawValue: 33)
    /// The sender's recall window for this message has passed.
    public static let recallWindowPassed = ClientErrorCode(rawValue: 34)
    /// Too many requests: a request limit of the gate (with the wait before
    /// the next may pass), or the same typing notice within a second.
    public static let rateLimited = ClientErrorCode(rawValue: 35)
    public static let unavailable = ClientErrorCode(rawValue: 30)
    /// A `geo` send committed here but too few other regions confirmed it in time.
    public static let durabilityTimeout = ClientErrorCode(rawValue: 31)
    /// The region did not answer within the gate's deadline; the request may
    /// have taken effect. Retry (a send keeps its client_msg_id).
    public static let timeout = ClientErrorCode(rawValue: 32)
    public static let internalError = ClientErrorCode(rawValue: 50)

    /// Every code above, in number order.
    public static let all: [ClientErrorCode] = [
        .malformedFrame, .frameTooLarge, .unknownFrameType, .authRequired, .tokenInvalid, .tokenExpired, .idleTimeout, .goingAway,
        .authTimeout, .slowConsumer, .tooManyConnections, .tokenRevoked, .unknownUser, .notMember, .unknownConversation,
        .invalidRequest, .payloadTooLarge, .notPermitted, .groupFull, .blocked, .noRequest, .groupDissolved, .unavailable,
        .durabilityTimeout, .timeout, .muted, .recallWindowPassed, .rateLimited, .internalError,
    ]

    public var description: String {
        switch self {
        case .malformedFrame: "malformed_frame"
        case .frameTooLarge: "frame_too_large"
        case .unknownFrameType: "unknown_frame_type"
        case .authRequired: "auth_required"
        case .tokenInvalid: "token_invalid"
        case .tokenExpired: "token_expired"
        case .idleTimeout: "idle_timeout"
        case .goingAway: "going_away"
        case .authTimeout: "auth_timeout"
        case .slowConsumer: "slow_consumer"
        case .tooManyConnections: "too_many_connections"
        case .tokenRevoked: "token_revoked"
        case .unknownUser: "unknown_user"
        case .notMember: "not_member"
        case .unknownConversation: "unknown_conversation"
        case .invalidRequest: "invalid_request"
        case .payloadTooLarge: "payload_too_large"
        case .notPermitted: "not_permitted"
        case .groupFull: "group_full"
        case .blocked: "blocked"
        case .noRequest: "no_request"
        case .groupDissolved: "group_dissolved"
        case .muted: "muted"
        case .recallWindowPassed: "recall_window_passed"
        case .rateLimited: "rate_limited"
        case .unavailable: "unavailable"
        case .durabilityTimeout: "durability_timeout"
        case .timeout: "timeout"
        case .internalError: "internal"
        default: "code_\(rawValue)"
        }
    }
}

/// The one error a device ever sees: a code from the table above and a
/// message written for the device. Business logic throws it; the gate and
/// logic turn any other error into one with `init(converting:)`, so nothing
/// internal (a PostgreSQL error, an address, a stack of causes) reaches a
/// device. `debugDescription` adds what only the logs may hold.
public struct ClientError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public let code: ClientErrorCode
    /// Safe to send to the device.
    public let message: String
    /// For logs only: what went wrong underneath.
    public let detail: String?
    /// `rate_limited` by a request limit: when the same request may pass.
    public let retryAfterMilliseconds: UInt64?

    public init(_ code: ClientErrorCode, _ message: String, detail: String? = nil, retryAfterMilliseconds: UInt64? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }

    /// What a device may be told about `error`: itself when it is a
    /// `ClientError`, its own answer when it knows one, else `internal`.
    public init(converting error: any Error) {
        switch error {
        case let error as ClientError: self = error
        case let error as any ClientErrorConvertible: self = error.clientError
        default: self.init(.internalError, "internal error", detail: String(reflecting: error))
        }
    }

    public var description: String { "\(code) (\(code.rawValue)): \(message)" }

    public var debugDescription: String {
        detail.map { "\(description) [\($0)]" } ?? description
    }
}

/// An error of a lower layer (the store, a link between roles) that knows
/// which `ClientError` a device gets for it: grpc-swift's
/// `RPCErrorConvertible`, for our wire.
public protocol ClientErrorConvertible: Error {
    var clientError: ClientError { get }
}
