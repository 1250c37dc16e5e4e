import Logging
import ParleyCore
import ParleyProto
import PostgresNIO
import SwiftProtobuf

extension RegionStore {
    /// Loads, in a few set-based queries, everything the planner checks.
    static func loadSnapshot(for commands: [StoreCommand], _ tx: DatabaseConnection, _ logger: Logger) async throws -> CommitSnapshot {
        var users: Set<String> = []
        var conversations: Set<String> = []
        var postKeys: [PostKey] = []
        var messageIDs: Set<MessageID> = []
        var readers: [ReaderKey] = []
        for command in commands {
            switch command {
            case .register(let userID):
                users.insert(userID)
            case .post(let post):
                users.insert(post.sender)
                if case .user(let peer) = post.target { users.insert(peer) }
                conversations.insert(post.conversationID)
                postKeys.append(PostKey(sender: post.sender, clientMsgID: post.clientMsgID))
            case .markRead(let reader, let conversationID, let messageID):
                conversations.insert(conversationID)
                messageIDs.insert(messageID)
                readers.append(ReaderKey(conversationID: conversationID, userID: reader))
            case .createGroup(let owner, let groupID, _, let members):
                users.formUnion(members)
                users.insert(owner)
                conversations.insert(ConversationID.group(groupID))
            case .edit(_, let messageID, _), .recall(_, let messageID):
                messageIDs.insert(messageID)
            case .addMember(_, let groupID, let userID), .removeMember(_, let groupID, let userID):
                users.insert(userID)
                conversations.insert(ConversationID.group(groupID))
            case .setProfile:
                break
            }
        }
        let ids = Array(messageIDs)
        let statement = SnapshotStatement(
            users: Array(users), conversations: Array(conversations),
            postSenders: postKeys.map(\.sender), postClientIDs: postKeys.map(\.clientMsgID),
            messageOrigins: ids.map(\.origin), messageSeqs: ids.map { Int64($0.seq) },
            readerConversations: readers.map(\.conversationID), readerUsers: readers.map(\.userID)
        )
        let rows = try await tx.execute(statement, logger: logger)
        var snapshot = CommitSnapshot()
        for try await (kind, a, b, c, payload, n, h, recalled) in rows {
            switch kind {
            case 1: snapshot.knownUsers.insert(a)
            case 2:
                snapshot.conversations.insert(a)
                snapshot.owners[a] = b
            case 3: snapshot.members[a, default: []].insert(b)
            case 4:
                if let payload { snapshot.storedPosts[PostKey(sender: a, clientMsgID: b)] = try Parley_Event(buffer: payload) }
            case 5:
                let order = ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: a, seq: UInt64(n))
                snapshot.messages[MessageID(origin: a, seq: UInt64(n))] = StoredMessage(
                    conversationID: b, order: order, sender: c, recalled: recalled
                )
            default:
                snapshot.readMarkers[ReaderKey(conversationID: a, userID: b)] =
                    ConversationOrder(hlc: HLC(rawValue: UInt64(h)), origin: c, seq: UInt64(n))
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
