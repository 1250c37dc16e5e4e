import Logging
import ParleyCore
import ParleyProto
import PostgresNIO
import SwiftProtobuf

/// The rows a commit reads under the origin's lock, named by key: logic's
/// planner says what it will check (`SnapshotKeys`), the store reads it in
/// one round trip (`CommitSnapshot`). The store knows rows, not rules.
public struct SnapshotKeys: Sendable {
    public var users: Set<String> = []
    public var conversations: Set<String> = []
    public var posts: [PostKey] = []
    public var messages: Set<MessageID> = []
    public var readers: [ReaderKey] = []

    public init() {}
}

/// Stored state as the keys found it; conversations include those of the
/// messages named.
public struct CommitSnapshot: Sendable {
    public var knownUsers: Set<String> = []
    public var conversations: Set<String> = []
    /// Group conversation → its owner.
    public var owners: [String: String] = [:]
    /// Present members by conversation.
    public var members: [String: Set<String>] = [:]
    /// Events of posts already stored, by (sender, client_msg_id).
    public var storedPosts: [PostKey: Parley_Event] = [:]
    public var messages: [MessageID: StoredMessage] = [:]
    public var readMarkers: [ReaderKey: ConversationOrder] = [:]
    /// This origin's counter of each user the snapshot looked at (the named
    /// users and the members found); a user looked at with no row is at 0.
    var counters: [String: UInt64] = [:]
    var countersLookedAt: Set<String> = []
    /// Every origin's head: applied seq and last hlc.
    var heads: [String: (seq: UInt64, hlc: UInt64)] = [:]

    public init() {}
}

public struct StoredMessage: Sendable {
    public var conversationID: String
    public var order: ConversationOrder
    public var sender: String
    public var recalled: Bool

    public init(conversationID: String, order: ConversationOrder, sender: String, recalled: Bool) {
        self.conversationID = conversationID
        self.order = order
        self.sender = sender
        self.recalled = recalled
    }
}

extension RegionStore {
    /// Loads, in one set-based query, the rows `keys` name.
    static func loadSnapshot(_ keys: SnapshotKeys, origin: String, _ tx: DatabaseConnection, _ logger: Logger) async throws -> CommitSnapshot {
        let ids = Array(keys.messages)
        let statement = SnapshotStatement(
            users: Array(keys.users), conversations: Array(keys.conversations),
            postSenders: keys.posts.map(\.sender), postClientIDs: keys.posts.map(\.clientMsgID),
            messageOrigins: ids.map(\.origin), messageSeqs: ids.map { Int64($0.seq) },
            readerConversations: keys.readers.map(\.conversationID), readerUsers: keys.readers.map(\.userID), origin: origin
        )
        let rows = try await tx.execute(statement, logger: logger)
        var snapshot = CommitSnapshot()
        snapshot.countersLookedAt = keys.users
        for try await (kind, a, b, c, payload, n, h, recalled) in rows {
            switch kind {
            case 1: snapshot.knownUsers.insert(a)
            case 2:
                snapshot.conversations.insert(a)
                snapshot.owners[a] = b
            case 3:
                snapshot.members[a, default: []].insert(b)
                snapshot.countersLookedAt.insert(b)
            case 4:
                if let payload { snapshot.storedPosts[PostKey(sender: a, clientMsgID: b)] = try Parley_Event(buffer: payload) }
            case 5:
                let order = ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: a, seq: UInt64(n))
                snapshot.messages[MessageID(origin: a, seq: UInt64(n))] = StoredMessage(
                    conversationID: b, order: order, sender: c, recalled: recalled
                )
            case 6:
                snapshot.readMarkers[ReaderKey(conversationID: a, userID: b)] =
                    ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: c, seq: UInt64(n))
            case 7: snapshot.counters[a] = UInt64(n)
            default: snapshot.heads[a] = (UInt64(n), UInt64(h))
            }
        }
        return snapshot
    }
}

extension Parley_Event {
    init(buffer: ByteBuffer) throws {
        try self.init(serializedBytes: Array(buffer.readableBytesView))
    }

    /// The stored form. Deterministic (map entries sorted), so every region
    /// stores the same bytes for the same event and digests can compare them.
    var encodedBuffer: ByteBuffer {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        // Encoding an in-memory message cannot fail.
        return ByteBuffer(bytes: (try? serializedBytes(options: options) as [UInt8]) ?? [])
    }
}
