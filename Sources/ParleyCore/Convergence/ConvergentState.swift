/// A region's derived state as the convergence rules build it, without a
/// database: every batch is reduced by `ConvergentBatch`, exactly as the
/// store reduces it, then absorbed with the guards the store's SQL applies
/// against stored rows (ParleyStore, `DerivedRows.sql`: one guard per table).
///
/// `apply` is idempotent and gives the same state for any causal delivery
/// order and any batching of the same events: every rule is a max, a min or
/// a union.
public struct ConvergentState: Equatable, Sendable {
    public private(set) var applied = Set<EventID>()
    public private(set) var messages: [EventID: ConvergentBatch.Message] = [:]
    public private(set) var clientWinners: [PostKey: ConvergentBatch.Winner] = [:]
    public private(set) var groups: [String: ConvergentBatch.Group] = [:]
    public private(set) var readMarkers: [ReaderKey: ConversationOrder] = [:]
    public private(set) var membership: [ConvergentBatch.FieldKey: LastWriterWins<Bool>] = [:]
    public private(set) var profiles: [ConvergentBatch.FieldKey: LastWriterWins<String>] = [:]
    public private(set) var settings: [ConvergentBatch.FieldKey: LastWriterWins<String>] = [:]
    public private(set) var registers: [RegisterKey: LastWriterWins<String>] = [:]
    public private(set) var hiddenFor: Set<HiddenMessage> = []
    /// Each conversation's newest message.
    public private(set) var activity: [String: ConversationOrder] = [:]

    public init() {}

    public mutating func apply(_ event: ReplicatedEvent) { apply([event]) }

    /// Applies a causally ordered batch in one step, skipping events already
    /// applied, as the store applies one transaction.
    public mutating func apply(_ events: [ReplicatedEvent]) {
        let fresh = events.filter { applied.insert($0.id).inserted }
        guard !fresh.isEmpty else { return }
        absorb(ConvergentBatch(fresh))
    }

    /// The guards: how a batch's writes meet what is stored.
    private mutating func absorb(_ batch: ConvergentBatch) {
        // Messages are inserted once (ON CONFLICT DO NOTHING).
        messages.merge(batch.messages) { stored, _ in stored }
        // Edits: later stamp, not recalled. Recalls: the tombstone.
        for (id, edit) in batch.edits { messages[id]?.offerEdit(edit.value, at: edit.stamp) }
        for id in batch.recalls { messages[id]?.recall() }
        // Client ids and groups: the lower stamp stays.
        clientWinners.merge(batch.clientWinners) { stored, new in new.stamp < stored.stamp ? new : stored }
        groups.merge(batch.groups) { stored, new in new.stamp < stored.stamp ? new : stored }
        // Registers: the later stamp stays.
        membership.merge(batch.membership) { stored, new in var kept = stored; kept.offer(new); return kept }
        profiles.merge(batch.profiles) { stored, new in var kept = stored; kept.offer(new); return kept }
        settings.merge(batch.settings) { stored, new in var kept = stored; kept.offer(new); return kept }
        registers.merge(batch.registers) { stored, new in var kept = stored; kept.offer(new); return kept }
        // Deletions for one user: a union. Activity: the newest.
        hiddenFor.formUnion(batch.hiddenFor)
        activity.merge(batch.activity) { stored, new in max(stored, new) }
        // Read markers: the higher order stays.
        let markers = batch.readMarkers { messages[$0]?.order }
        readMarkers.merge(markers) { stored, new in max(stored, new) }
    }

    // MARK: - Reading the state

    /// True when another message with the same (sender, client_msg_id) won.
    public func isHidden(_ id: EventID) -> Bool {
        guard let message = messages[id],
              let winner = clientWinners[PostKey(sender: message.sender, clientMsgID: message.clientMsgID)]
        else { return false }
        return winner.id != id
    }

    /// A conversation's visible messages in conversation order: hidden
    /// duplicates left out, recalled ones kept as tombstones.
    public func conversation(_ id: String) -> [(id: EventID, message: ConvergentBatch.Message)] {
        messages.filter { $0.value.conversation == id && !isHidden($0.key) }
            .map { (id: $0.key, message: $0.value) }
            .sorted { $0.message.order < $1.message.order }
    }

    public func members(of group: String) -> Set<String> {
        Set(membership.filter { $0.key.owner == ConversationID.group(group) && $0.value.value }.map(\.key.name))
    }

    public func profile(of user: String, field: String) -> String? {
        profiles[ConvergentBatch.FieldKey(owner: user, name: field)]?.value
    }

    public func register(_ key: RegisterKey) -> String? { registers[key]?.value }

    public func setting(of user: String, _ setting: UserSetting) -> String? {
        settings[ConvergentBatch.FieldKey(owner: user, name: setting.key)]?.value
    }
}
