import CoreMetrics
import ParleyMetrics
import ParleyProto
import ParleyWire

/// What a logic instance counts (docs/OPERATIONS.md, "Metrics"), through swift-metrics.
struct LogicMetrics: Sendable {
    private let requests = CounterFamily("parley_logic_requests_total", by: "kind", values: ["send", "sync", "history", "auth"])
    /// From a call's arrival to its answer, whatever it was.
    private let requestLatency = CoreMetrics.Timer(label: "parley_logic_request_seconds")
    /// Commands per group-commit transaction.
    let commitBatchSize = Recorder(label: "parley_logic_commit_batch_size", aggregate: true)
    /// One group-commit transaction, retry included.
    let commitLatency = CoreMetrics.Timer(label: "parley_logic_commit_seconds")
    /// Batches given up after their retry: every command in them was refused with `unavailable`.
    let commitFailures = CoreMetrics.Counter(label: "parley_logic_commit_failures_total")
    /// From an event's commit (or its arrival from a peer) to its pushes
    /// being handed to the gates' links.
    let pushLatency = CoreMetrics.Timer(label: "parley_logic_push_seconds")
    /// Pushes handed to gates, one per device.
    let pushes = CoreMetrics.Counter(label: "parley_logic_pushes_total")

    /// A call arrived: counted by its frame's kind (`send`, `history`, …).
    func request(_ frame: Parley_Frame) {
        requests.increment(frame.kindName)
    }

    func answered(after nanoseconds: Int64) { requestLatency.recordNanoseconds(nanoseconds) }
}
