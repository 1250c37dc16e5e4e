/// A user's private settings: replicated like profile fields (last writer
/// wins), never shown to other users, read by ext to decide who is notified
/// while offline (docs/ARCHITECTURE.md, "Follow-up work: ext").
public enum UserSetting: Hashable, Sendable {
    /// A device's push token; empty once the device stops notifications.
    case pushToken(device: String)
    /// "1" while a conversation is muted for all of the user's devices;
    /// the conversation "" stands for all of them.
    case muted(conversation: String)

    /// The register's name in the store.
    public var key: String {
        switch self {
        case .pushToken(let device): "push/\(device)"
        case .muted(let conversation): "mute/\(conversation)"
        }
    }

    public init?(key: String) {
        if key.hasPrefix("push/") {
            self = .pushToken(device: String(key.dropFirst(5)))
        } else if key.hasPrefix("mute/") {
            self = .muted(conversation: String(key.dropFirst(5)))
        } else {
            return nil
        }
    }

    /// The value stored for a mute.
    public static func muteValue(_ muted: Bool) -> String { muted ? "1" : "" }
}
