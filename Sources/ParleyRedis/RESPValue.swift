/// A Redis reply.
public enum RESPValue: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RESPValue])

    /// The reply as text, for bulk strings and status replies.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

/// A Redis server answered a command with an error reply, or the connection failed.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "redis: \(message)" }
}
