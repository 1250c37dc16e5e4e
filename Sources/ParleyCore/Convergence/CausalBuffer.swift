/// Causal delivery: events arrive from any peer, in any order, possibly more
/// than once; they leave in an order where each event comes after everything
/// it depends on. An event `(o, seq)` is released when `applied[o] == seq - 1`
/// and `applied ≥ deps`.
///
/// A pure state machine (event in, releasable events out), used by the
/// replication apply path and tested as transcripts.
public struct CausalBuffer<Payload: Sendable>: Sendable {
    public private(set) var applied: VersionVector
    private var waiting: [String: [UInt64: (deps: VersionVector, payload: Payload)]] = [:]

    public init(applied: VersionVector = VersionVector()) { self.applied = applied }

    /// Events received but not yet releasable.
    public var waitingCount: Int { waiting.values.reduce(0) { $0 + $1.count } }

    /// Takes one event; returns every event that became releasable, in a causal order.
    public mutating func receive(origin: String, seq: UInt64, deps: VersionVector, payload: Payload) -> [Payload] {
        guard seq > applied[origin], waiting[origin]?[seq] == nil else { return [] }
        waiting[origin, default: [:]][seq] = (deps, payload)
        return release()
    }

    private mutating func release() -> [Payload] {
        var released: [Payload] = []
        var progressed = true
        while progressed {
            progressed = false
            for origin in waiting.keys.sorted() {
                while let next = waiting[origin]?[applied[origin] + 1], applied.dominates(next.deps) {
                    waiting[origin]?[applied[origin] + 1] = nil
                    applied[origin] += 1
                    released.append(next.payload)
                    progressed = true
                }
                if waiting[origin]?.isEmpty == true { waiting[origin] = nil }
            }
        }
        return released
    }
}
