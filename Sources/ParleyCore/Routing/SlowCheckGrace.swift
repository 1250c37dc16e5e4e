/// How a gate reads one of its own health checks that timed out: "slow", and
/// still serving, while that check answered ok within `graceMilliseconds`;
/// failed once it has not for longer. A gate whose executor is busy with a
/// reconnect storm runs its checks late and sees them time out; reporting
/// that as a failure had route declare the region down and the gate evict
/// the devices it was busy taking back (docs/OPERATIONS.md, "Slow is not gone").
/// A check that fails outright (refused, PostgreSQL down) fails at once.
public struct SlowCheckGrace: Sendable {
    public static let slowPrefix = "slow: "
    public let graceMilliseconds: UInt64
    private var lastOK: [String: UInt64] = [:]

    public init(graceMilliseconds: UInt64) {
        self.graceMilliseconds = graceMilliseconds
    }

    /// The outcome to report for `check`: "ok", "slow: <why>" or `outcome`.
    public mutating func read(_ check: String, outcome: String, timedOut: Bool, now: UInt64) -> String {
        if outcome == "ok" {
            lastOK[check] = now
            return outcome
        }
        guard timedOut, let last = lastOK[check], now &- last <= graceMilliseconds else { return outcome }
        return Self.slowPrefix + outcome
    }

    /// Whether a reported outcome still serves: ok, or slow within the grace.
    public static func serves(_ outcome: String) -> Bool {
        outcome == "ok" || outcome.hasPrefix(slowPrefix)
    }
}
