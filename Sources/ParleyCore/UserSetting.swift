/// A user's private settings: replicated like profile fields (last writer
/// wins), never shown to other users, read by ext to decide who is notified
/// while offline (docs/ARCHITECTURE.md, "Follow-up work: ext").
public enum UserSetting: Hashable, Sendable {
    /// A device's push token; empty once the device stops notifications.
    case pushToken(device: String)
    /// "1" while a conversation is muted for all of the user's devices;
    /// the conversation "" stands for all of them.
    case muted(conversation: String)
    /// The user's private name for another user ("" for none).
    case remark(peer: String)
    /// "1" while a conversation is pinned to the top of the user's list.
    case pinned(conversation: String)
    /// Tokens issued before this time (ms since 1970) are refused for
    /// the device; the device "" stands for all of them.
    case tokensRevoked(device: String)

    /// The register's name in the store.
    public var key: String {
        switch self {
        case .pushToken(let device): "push/\(device)"
        case .muted(let conversation): "mute/\(conversation)"
        case .remark(let peer): "remark/\(peer)"
        case .pinned(let conversation): "pin/\(conversation)"
        case .tokensRevoked(let device): "revoked/\(device)"
        }
    }

    public init?(key: String) {
        if key.hasPrefix("push/") {
            self = .pushToken(device: String(key.dropFirst(5)))
        } else if key.hasPrefix("mute/") {
            self = .muted(conversation: String(key.dropFirst(5)))
        } else if key.hasPrefix("remark/") {
            self = .remark(peer: String(key.dropFirst(7)))
        } else if key.hasPrefix("pin/") {
            self = .pinned(conversation: String(key.dropFirst(4)))
        } else if key.hasPrefix("revoked/") {
            self = .tokensRevoked(device: String(key.dropFirst(8)))
        } else {
            return nil
        }
    }

    /// The value stored for a mute.
    public static func muteValue(_ muted: Bool) -> String { flagValue(muted) }

    /// The value stored for a flag (a mute, a pin): "1" or "".
    public static func flagValue(_ on: Bool) -> String { on ? "1" : "" }
}

extension UserSetting {
    /// Whether a token issued at `issuedAt` (ms since 1970, with the
    /// milliseconds the token carries) is revoked for
    /// `device`, given the user's settings: revoked for the device, or for all.
    public static func isRevoked(issuedAt: UInt64, device: String, in settings: [UserSetting: String]) -> Bool {
        [UserSetting.tokensRevoked(device: ""), .tokensRevoked(device: device)].contains { setting in
            settings[setting].flatMap(UInt64.init).map { issuedAt < $0 } ?? false
        }
    }
}
