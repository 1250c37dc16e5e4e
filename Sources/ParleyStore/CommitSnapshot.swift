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
    /// (conversation, subject) pairs whose registers, and membership stamp
    /// when the subject is a member, the planner checks. A named
    /// conversation's own registers (subject "") come without asking.
    public var subjects: Set<RegisterOwner> = []
    /// A named message and who acts on it: names (its conversation, the actor)
    /// like `subjects`, the conversation being known only once stored.
    public var messageActors: [(message: MessageID, actor: String)] = []

    public init() {}
}

/// The registers of one conversation that concern one subject ("" for the conversation itself).
public struct RegisterOwner: Hashable, Sendable {
    public var conversation: String
    public var subject: String

    public init(conversation: String, subject: String) {
        self.conversation = conversation
        self.subject = subject
    }
}

/// Stored state as the keys found it; conversations include those of the
/// messages named.
public struct CommitSnapshot: Sendable {
    public var knownUsers: Set<String> = []
    public var conversations: Set<String> = []
    /// Group conversation → its owner.
    public var owners: [String: String] = [:]
    /// Group conversation → the name its creation gave it.
    public var groupNames: [String: String] = [:]
    /// Present members by conversation.
    public var members: [String: Set<String>] = [:]
    /// Events of posts already stored, by (sender, client_msg_id).
    public var storedPosts: [PostKey: Parley_Event] = [:]
    public var messages: [MessageID: StoredMessage] = [:]
    public var readMarkers: [ReaderKey: ConversationOrder] = [:]
    /// Registers of the named conversations and subjects, with their stamps.
    public var registers: [RegisterKey: (value: String, stamp: Stamp)] = [:]
    /// The stamp of the membership register of each named subject that has
    /// one (present or not): when they were last added or removed.
    public var membershipStamps: [RegisterOwner: Stamp] = [:]
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
        let subjects = Array(keys.subjects)
        let statement = SnapshotStatement(
            users: Array(keys.users), conversations: Array(keys.conversations),
            postSenders: keys.posts.map(\.sender), postClientIDs: keys.posts.map(\.clientMsgID),
            messageOrigins: ids.map(\.origin), messageSeqs: ids.map { Int64($0.seq) },
            readerConversations: keys.readers.map(\.conversationID), readerUsers: keys.readers.map(\.userID), origin: origin,
            subjectConversations: subjects.map(\.conversation), subjects: subjects.map(\.subject),
            actorOrigins: keys.messageActors.map(\.message.origin), actorSeqs: keys.messageActors.map { Int64($0.message.seq) },
            actors: keys.messageActors.map(\.actor)
        )
        let rows = try await tx.execute(statement, logger: logger)
        var snapshot = CommitSnapshot()
        snapshot.countersLookedAt = keys.users
        for try await (kind, a, b, c, payload, n, h, flag, value, o) in rows {
            switch kind {
            case 1: snapshot.knownUsers.insert(a)
            case 2:
                snapshot.conversations.insert(a)
                snapshot.owners[a] = b
                snapshot.groupNames[a] = c
            case 3:
                snapshot.members[a, default: []].insert(b)
                snapshot.countersLookedAt.insert(b)
            case 4:
                if let payload { snapshot.storedPosts[PostKey(sender: a, clientMsgID: b)] = try Parley_Event(buffer: payload) }
            case 5:
                let order = ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: a, seq: UInt64(n))
                snapshot.messages[MessageID(origin: a, seq: UInt64(n))] = StoredMessage(
                    conversationID: b, order: order, sender: c, recalled: flag
                )
            case 6:
                snapshot.readMarkers[ReaderKey(conversationID: a, userID: b)] =
                    ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: c, seq: UInt64(n))
            case 7: snapshot.counters[a] = UInt64(n)
            case 8: snapshot.heads[a] = (UInt64(n), UInt64(h))
            case 9:
                snapshot.registers[RegisterKey(conversation: a, subject: b, name: c)] = (value, Stamp(hlc: HLC(rawValue: UInt64(h)), origin: o))
            default:
                snapshot.membershipStamps[RegisterOwner(conversation: a, subject: b)] = Stamp(hlc: HLC(rawValue: UInt64(h)), origin: o)
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
