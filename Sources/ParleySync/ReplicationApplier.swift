import Logging
import ParleyCore
import ParleyProto
import ParleyStore

/// Applies what the peers send, in causal order, once each: events from all
/// peers go through one `CausalBuffer`, and whatever it releases is applied
/// in one transaction per batch.
actor ReplicationApplier {
    private let store: RegionStore
    private let origin: String
    private let monitor: ReplicationMonitor
    private let logger: Logger
    private var buffer: CausalBuffer<Parley_Event>?

    init(store: RegionStore, origin: String, monitor: ReplicationMonitor, logger: Logger) {
        self.store = store
        self.origin = origin
        self.monitor = monitor
        self.logger = logger
    }

    /// The applied vector, as a puller should ask peers for.
    func vector() async throws -> VersionVector {
        try await prepared().applied
    }

    func receive(_ events: [Parley_Event]) async throws {
        var buffer = try await prepared()
        var ready: [Parley_Event] = []
        for event in events where event.origin != origin {
            ready += buffer.receive(origin: event.origin, seq: event.seq, deps: VersionVector(event.deps), payload: event)
        }
        self.buffer = buffer
        guard !ready.isEmpty else { return }
        do {
            try await store.applyReplicated(ready)
            monitor.applied(ready.count)
        } catch {
            // The buffer ran ahead of the database: start again from what is stored.
            self.buffer = nil
            throw error
        }
    }

    /// The buffer, seeded from the database. This region's own origin counts
    /// as fully applied: its events are committed here before anyone can depend on them.
    private func prepared() async throws -> CausalBuffer<Parley_Event> {
        if let buffer { return buffer }
        var applied = try await store.appliedVector()
        applied[origin] = UInt64(Int64.max)
        let fresh = CausalBuffer<Parley_Event>(applied: applied)
        buffer = fresh
        return fresh
    }
}
