/// A request rate: a token bucket refilled at `perSecond` up to `burst`.
/// A rate of zero is no limit at all.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var perSecond: Double
    public var burst: Int

    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = max(1, burst)
    }

    public static let unlimited = RateLimit(perSecond: 0, burst: 1)

    public var isUnlimited: Bool { perSecond <= 0 }

    /// How many tokens a gate takes from the shared bucket at once: a quarter
    /// of a second's worth, at most a quarter of the burst, at least one. A
    /// gate holds at most this many tokens another gate could have used; a
    /// tenth of a second's worth cost a Redis call per three requests
    /// (docs/BENCHMARKS.md, "Security: what the limits cost").
    public var leaseSize: Int { max(1, min(burst / 4, Int(perSecond / 4))) }

    public var description: String { isUnlimited ? "unlimited" : "\(perSecond)/s, burst \(burst)" }
}

/// One gate's share of token buckets that all gates of a region keep
/// together in Redis (docs/ARCHITECTURE.md, "Rate limits"): tokens are
/// leased from the shared bucket a few at a time and spent here, and a
/// refusal is remembered until the bucket has refilled, so neither admitted
/// nor refused requests cost a Redis call each. Pure: the caller asks Redis.
public struct LeaseLedger: Sendable {
    public enum Take: Equatable, Sendable {
        case granted
        /// Ask the shared bucket for a lease, then call `leased`.
        case askForLease
        /// The bucket is empty; it has a token again after this many milliseconds.
        case refused(retryAfterMilliseconds: UInt64)
    }

    private struct Entry {
        var tokens = 0
        /// Leased tokens not spent by then are dropped: the shared bucket
        /// has refilled meanwhile, and a lease must not outlive its rate.
        var leaseUntil: UInt64 = 0
        var refusedUntil: UInt64 = 0
    }

    private var entries: [String: Entry] = [:]
    private var takesSinceSweep = 0
    /// How long leased tokens may be spent.
    public let leaseLifetimeMilliseconds: UInt64

    public init(leaseLifetimeMilliseconds: UInt64 = 1_000) {
        self.leaseLifetimeMilliseconds = leaseLifetimeMilliseconds
    }

    /// Keys with an entry (for tests and metrics).
    public var count: Int { entries.count }

    /// Spends one token of `key` at `now` (milliseconds), if this gate holds one.
    public mutating func take(_ key: String, now: UInt64) -> Take {
        sweepNowAndThen(now: now)
        guard var entry = entries[key] else { return .askForLease }
        if now < entry.refusedUntil { return .refused(retryAfterMilliseconds: entry.refusedUntil - now) }
        guard entry.tokens > 0, now < entry.leaseUntil else { return .askForLease }
        entry.tokens -= 1
        entries[key] = entry
        return .granted
    }

    /// How long `key` is known to stay empty from `now` (0: not known to be).
    public func refusal(_ key: String, now: UInt64) -> UInt64 {
        guard let entry = entries[key], now < entry.refusedUntil else { return 0 }
        return entry.refusedUntil - now
    }

    /// What the shared bucket answered for `key`: `granted` tokens to spend
    /// here, or none until `retryAfter`. Tokens still held are kept: a
    /// refusal only counts once they are spent.
    public mutating func leased(_ key: String, granted: Int, retryAfterMilliseconds: UInt64, now: UInt64) {
        var entry = entries[key] ?? Entry()
        if now >= entry.leaseUntil { entry.tokens = 0 }
        if granted > 0 {
            entry.tokens += granted
            entry.leaseUntil = now + leaseLifetimeMilliseconds
            entry.refusedUntil = 0
        } else if entry.tokens == 0 {
            entry.refusedUntil = now + max(1, retryAfterMilliseconds)
        }
        entries[key] = entry
    }

    /// Forgets keys with nothing left to remember, every so often, so the
    /// ledger holds only the keys active in the last second or so.
    private mutating func sweepNowAndThen(now: UInt64) {
        takesSinceSweep += 1
        guard takesSinceSweep >= 4_096 else { return }
        takesSinceSweep = 0
        entries = entries.filter { now < $0.value.leaseUntil || now < $0.value.refusedUntil }
    }
}
