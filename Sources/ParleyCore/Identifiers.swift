/// Conversation and message identifiers. They are plain strings on the wire;
/// these helpers are the one place that builds and parses them.
public enum ConversationID {
    /// A 1:1 conversation is named by its two users, so both regions and
    /// both users derive the same id without coordination.
    public static func direct(_ a: String, _ b: String) -> String {
        a < b ? "d:\(a):\(b)" : "d:\(b):\(a)"
    }

    public static func group(_ groupID: String) -> String { "g:\(groupID)" }

    public static func isGroup(_ id: String) -> Bool { id.hasPrefix("g:") }

    /// The group id of a group conversation.
    public static func groupID(of conversation: String) -> String? {
        isGroup(conversation) ? String(conversation.dropFirst(2)) : nil
    }

    /// The two users of a direct conversation.
    public static func directUsers(of conversation: String) -> (String, String)? {
        let parts = conversation.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "d" else { return nil }
        return (String(parts[1]), String(parts[2]))
    }
}

/// Coordinates of an event in its origin's log. A message is identified by
/// the event that posted it (`MessageID`); its text form is `origin-seq`.
public struct EventID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let origin: String
    public let seq: UInt64

    public init(origin: String, seq: UInt64) {
        self.origin = origin
        self.seq = seq
    }

    public init?(_ text: String) {
        guard let dash = text.lastIndex(of: "-"),
              let seq = UInt64(text[text.index(after: dash)...])
        else { return nil }
        let origin = String(text[..<dash])
        guard !origin.isEmpty else { return nil }
        self.init(origin: origin, seq: seq)
    }

    public static func < (a: EventID, b: EventID) -> Bool { (a.origin, a.seq) < (b.origin, b.seq) }

    public var description: String { "\(origin)-\(seq)" }
}

public typealias MessageID = EventID

/// Names that appear inside identifiers (users, devices, regions) are kept
/// to a safe alphabet so ids stay unambiguous.
public enum Naming {
    public static let maxLength = 64

    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxLength && name.utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A)
                || (byte >= 0x30 && byte <= 0x39) || byte == 0x5F || byte == 0x2E
        }
    }
}

/// The sender of platform notices: a business system (`orders`) posts as
/// `~orders`. `~` is outside `Naming`'s alphabet, so no device can sign in as
/// a service, and a notice's conversation is `d:<user>:~<service>`. A
/// service has no devices: it is never in an event's audience.
public enum ServiceAccount {
    public static func userID(of service: String) -> String { "~\(service)" }

    public static func isService(_ userID: String) -> Bool { userID.hasPrefix("~") }
}
