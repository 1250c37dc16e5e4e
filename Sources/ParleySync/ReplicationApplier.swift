import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ParleyStore
import Tracing

/// Applies what the peers send, in causal order, once each: events from all
/// peers go through one `CausalBuffer`, and whatever it releases is applied
/// by one loop, one transaction for everything released since the last one.
///
/// Receiving does not wait for the database: a puller hands its batch over
/// and reads the next while the previous transaction commits, so under load
/// transactions grow instead of queueing (one per received message capped a
/// region at ~200 small transactions/s). A puller waits only when more than
/// `highWater` events are waiting to be applied: that is the flow control
/// that keeps a fast peer from filling memory.
actor ReplicationApplier {
    private let store: RegionStore
    private let origin: String
    private let monitor: ReplicationMonitor
    private let logger: Logger
    private let highWater: Int
    private let maxTransaction: Int
    private var buffer: CausalBuffer<Parley_Event>?
    /// Released by the buffer, in causal order, not yet committed.
    private var pending: [Parley_Event] = []
    private var applying = false
    private var roomWaiters: [CheckedContinuation<Void, Never>] = []

    init(store: RegionStore, origin: String, monitor: ReplicationMonitor, logger: Logger, highWater: Int = 20_000, maxTransaction: Int = 10_000) {
        self.store = store
        self.origin = origin
        self.monitor = monitor
        self.logger = logger
        self.highWater = highWater
        self.maxTransaction = maxTransaction
    }

    /// The vector a puller should ask peers from: what is applied or on its
    /// way to the database (a pending event is retried until it is stored).
    func vector() async throws -> VersionVector {
        try await prepared().applied
    }

    /// Hands events over for applying; returns at once unless too many wait.
    func receive(_ events: [Parley_Event]) async throws {
        var buffer = try await prepared()
        for event in events where event.origin != origin {
            pending += buffer.receive(origin: event.origin, seq: event.seq, deps: VersionVector(event.deps), payload: event)
        }
        self.buffer = buffer
        if !pending.isEmpty, !applying {
            applying = true
            Task { await self.applyPending() }
        }
        while pending.count > highWater {
            await withCheckedContinuation { roomWaiters.append($0) }
        }
    }

    /// Commits what is pending until nothing is. A failed transaction stored
    /// nothing (and an event stored anyway is skipped), so it is retried as
    /// is: the buffer already released those events and no peer sends them again.
    private func applyPending() async {
        var failures = 0
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxTransaction))
            // Each traced event's apply here joins the trace of the request that made it elsewhere.
            let spans = batch.compactMap { TraceParent.span("sync.apply", under: $0.traceParent, kind: .consumer) }
            do {
                try await applyWatched(batch)
                for span in spans { span.end() }
                pending.removeFirst(batch.count)
                monitor.applied(batch.count)
                failures = 0
                if pending.count <= highWater, !roomWaiters.isEmpty {
                    let waiters = roomWaiters
                    roomWaiters = []
                    for waiter in waiters { waiter.resume() }
                }
            } catch {
                for span in spans {
                    span.setStatus(.init(code: .error))
                    span.end()
                }
                failures += 1
                if failures == 1 { logger.warning("cannot apply replicated events; retrying", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: Backoff.internalLink.delay(afterFailures: failures))
            }
        }
        applying = false
    }

    /// Applies one transaction, saying so every 10 s while it runs: a
    /// transaction that never ends would otherwise stop replication silently.
    private func applyWatched(_ batch: [Parley_Event]) async throws {
        let store = self.store
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.applyReplicated(batch) }
            group.addTask {
                var waited = Duration.zero
                while true {
                    try await Task.sleep(for: .seconds(10))
                    waited += .seconds(10)
                    logger.warning("a replicated transaction is still running", metadata: ["events": "\(batch.count)", "for": "\(waited)"])
                }
            }
            defer { group.cancelAll() }
            try await group.next()
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
