import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ParleyStore
import ServiceLifecycle
import Tracing

/// Group commit: concurrent requests are written together, one transaction
/// per batch, so the origin's counter lock is taken once per batch rather
/// than once per message (docs/ARCHITECTURE.md, "Group commit": ~1,300 msgs/s
/// one by one on a 2-core machine, far more batched).
///
/// There is no fixed wait: while one batch commits, new commands queue up and
/// the next batch takes them all (up to `maxBatch`), so batches grow with load
/// and an idle region adds no latency.
final class GroupCommitter: Service, Sendable {
    /// A queued command, with the span of the request that asked for it (nil: not traced).
    private typealias Pending = (command: Command, ticket: OneShot<CommitOutcome>, span: (any Span)?)

    private let store: RegionStore
    private let rules: CommitRules
    private let logger: Logger
    private let queue: BatchQueue<Pending>
    private let onCommit: @Sendable ([Parley_Event]) -> Void
    private let metrics: LogicMetrics
    /// How long a batch keeps retrying while PostgreSQL is unreachable (a
    /// failover under Patroni); zero: it fails after its second attempt.
    private let failoverGrace: Duration

    init(
        store: RegionStore, rules: CommitRules, maxBatch: Int, failoverGrace: Duration = .zero, metrics: LogicMetrics, logger: Logger,
        onCommit: @escaping @Sendable ([Parley_Event]) -> Void
    ) {
        self.store = store
        self.failoverGrace = failoverGrace
        self.metrics = metrics
        self.rules = rules
        self.logger = logger
        self.queue = BatchQueue(maxBatch: maxBatch)
        self.onCommit = onCommit
    }

    /// Queues a command for the next batch, at once: commands queued one
    /// after the other commit in that order (one connection's pipelined
    /// requests). The ticket gives the outcome once its batch committed.
    func enqueue(_ command: Command) -> OneShot<CommitOutcome> {
        let ticket = OneShot<CommitOutcome>()
        // From here to its batch's commit, under the current request's span.
        let span = TraceParent.span("logic.commit", under: TraceParent.of())
        if !queue.push((command, ticket, span)) {
            span?.end()
            ticket.resolve(.failure(ClientError(.unavailable, "logic is shutting down")))
        }
        return ticket
    }

    /// Commits batches until shutdown, then commits what is still queued.
    func run() async throws {
        await withGracefulShutdownHandler {
            while let batch = await queue.next() { await commit(batch) }
        } onGracefulShutdown: {
            self.queue.close()
        }
    }

    private func commit(_ batch: [Pending]) async {
        let commands = batch.map(\.command)
        metrics.commitBatchSize.record(batch.count)
        let started = ContinuousClock.now
        defer { metrics.commitLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
        var lastError: (any Error)?
        var attempt = 0
        // One retry: a concurrent commit of the same client_msg_id by another
        // logic instance aborts this batch, and the retry then finds it stored.
        // More while the store fails over (`failoverGrace`): a batch whose
        // COMMIT was cut off may have committed, and its retry then answers
        // each post with its first event (client_msg_id), never twice.
        while true {
            attempt += 1
            do {
                let outcomes = try await store.commit(commands, rules: rules, traceParents: batch.map { entry in entry.span.map { TraceParent.of($0.context) } ?? "" })
                for (entry, outcome) in zip(batch, outcomes) {
                    entry.span?.attributes["parley.batch"] = batch.count
                    entry.span?.end()
                    entry.ticket.resolve(.success(outcome))
                }
                let events = outcomes.compactMap { outcome -> Parley_Event? in
                    if case .committed(let event) = outcome { return event }
                    return nil
                }
                if !events.isEmpty { onCommit(events) }
                return
            } catch {
                lastError = error
                logger.warning("group commit failed", metadata: ["attempt": "\(attempt)", "size": "\(batch.count)", "error": "\(String(reflecting: error))"])
                let ridingOut = StoreError.isConnectionFailure(error) && ContinuousClock.now - started < failoverGrace
                guard attempt < 2 || ridingOut else { break }
                if ridingOut { try? await Task.sleep(for: Backoff.storeFailover.delay(afterFailures: attempt)) }
            }
        }
        // The database's words stay in the log: a device learns only that it may retry.
        metrics.commitFailures.increment()
        logger.error("group commit gave up", metadata: ["size": "\(batch.count)", "error": "\(lastError.map { String(reflecting: $0) } ?? "unknown")"])
        let failure = ClientError(.unavailable, "could not commit; retry", detail: lastError.map { String(reflecting: $0) })
        for entry in batch {
            entry.span?.setStatus(.init(code: .error))
            entry.span?.end()
            entry.ticket.resolve(.failure(failure))
        }
    }
}

