/// How long to wait before retrying after failures: `base` doubling with each
/// failure up to `cap`, with a random part so that many retrying at once
/// (clients after a region failed) do not stampede. The one backoff of every
/// retry loop: clients reconnecting, internal streams reopening, replicated
/// transactions retried.
public struct Backoff: Sendable, Equatable {
    public let base: Duration
    public let cap: Duration
    /// The fraction of each delay left to chance (0: none; 0.5: between half and all of it).
    public let jitter: Double

    public init(base: Duration, cap: Duration, jitter: Double = 0) {
        precondition((0...1).contains(jitter), "jitter is a fraction")
        self.base = base
        self.cap = cap
        self.jitter = jitter
    }

    /// The wait before the next try after `failures` failures in a row.
    public func delay(afterFailures failures: Int) -> Duration {
        let doubled = base * (1 << min(max(failures, 0), 30))
        let full = min(cap, doubled)
        guard jitter > 0 else { return full }
        let nanoseconds = Double(full.components.seconds) * 1e9 + Double(full.components.attoseconds) / 1e9
        return .nanoseconds(Int64(nanoseconds * (1 - jitter * Double.random(in: 0...1))))
    }

    /// Between processes of a region and between regions: 100 ms after the
    /// first failure, doubling to 2 s; peers are few, so no jitter.
    public static let internalLink = Backoff(base: .milliseconds(50), cap: .seconds(2))

    /// A commit waiting for the region's PostgreSQL to fail over to its
    /// standby: 100 ms doubling to 1 s, so the new primary's first second is not missed.
    public static let storeFailover = Backoff(base: .milliseconds(50), cap: .seconds(1))

    /// Devices: 50 ms doubling to 5 s, each wait between half and all of that.
    public static let client = Backoff(base: .milliseconds(50), cap: .seconds(5), jitter: 0.5)
}
