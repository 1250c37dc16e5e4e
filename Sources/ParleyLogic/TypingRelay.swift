import Logging
import ParleyCore
import ParleyProto
import ParleyStore
import Synchronization

/// Typing notices: ephemeral, so never stored and never an event. A member's
/// notice goes to the conversation's other members connected to this region
/// (through presence, like a push) and, through `TypingForwarder`, to every
/// peer region, which pushes it to the members connected there
/// (`deliverRelayed`). One that repeats the same state within `interval` is
/// refused with `rate_limited` (docs/PROTOCOL.md, "Messages").
final class TypingRelay: Sendable {
    private struct Key: Hashable {
        var user: String
        var conversation: String
    }

    private let store: RegionStore
    private let dispatcher: PushDispatcher
    private let forwarder: TypingForwarder
    private let interval: Duration
    private let lastPassed = Mutex<[Key: (typing: Bool, at: ContinuousClock.Instant)]>([:])

    init(store: RegionStore, dispatcher: PushDispatcher, forwarder: TypingForwarder, interval: Duration = .seconds(1)) {
        self.store = store
        self.dispatcher = dispatcher
        self.forwarder = forwarder
        self.interval = interval
    }

    func relay(from user: String, in conversationID: String, typing: Bool) async throws {
        let members: [String]
        if let (a, b) = ConversationID.directUsers(of: conversationID) {
            guard a == user || b == user else { throw ClientError(.notMember, "not a member of \(conversationID)") }
            members = [a, b]
        } else {
            switch try await store.access(userID: user, conversationID: conversationID) {
            case .member: members = try await store.presentMembers(of: conversationID)
            case .notMember: throw ClientError(.notMember, "not a member of \(conversationID)")
            case .unknownConversation: throw ClientError(.unknownConversation, "unknown conversation \(conversationID)")
            }
        }
        try admit(Key(user: user, conversation: conversationID), typing: typing)
        let notice = Parley_TypingNotice.with {
            $0.conversationID = conversationID
            $0.userID = user
            $0.typing = typing
        }
        forwarder.forward(notice)
        await dispatcher.deliver(notice, to: members.filter { $0 != user && !ServiceAccount.isService($0) })
    }

    /// A notice a peer region admitted: to the conversation's other members
    /// connected here. Membership is this region's view of it, which may lag
    /// the sender's region by the replication delay.
    func deliverRelayed(_ notice: Parley_TypingNotice) async {
        let members: [String]
        if let (a, b) = ConversationID.directUsers(of: notice.conversationID) {
            members = [a, b]
        } else {
            guard let present = try? await store.presentMembers(of: notice.conversationID) else { return }
            members = present
        }
        await dispatcher.deliver(notice, to: members.filter { $0 != notice.userID && !ServiceAccount.isService($0) })
    }

    /// A change of state always passes; the same state again only after `interval`.
    private func admit(_ key: Key, typing: Bool) throws {
        let now = ContinuousClock.now
        let interval = self.interval
        let admitted = lastPassed.withLock { passed -> Bool in
            if let last = passed[key], last.typing == typing, now - last.at < interval { return false }
            if passed.count > 100_000 { passed = passed.filter { now - $0.value.at < interval } }
            passed[key] = (typing, now)
            return true
        }
        guard admitted else { throw ClientError(.rateLimited, "one typing notice per conversation per second") }
    }
}
