/// What a gate's `GET /health` answers, and what `parley route` probes to
/// decide whether a region can serve its users: 200 when the gate's Redis
/// answers PING and at least one logic instance can serve (its PostgreSQL and
/// Redis answer), else 503.
public struct GateHealthReport: Codable, Sendable, Equatable {
    public var region: String
    /// The gate's presence node id.
    public var gate: String
    public var healthy: Bool
    /// `redis` (the gate's own), and `logic <address>` for each instance:
    /// "ok", "slow: …" (timed out, but answered ok moments ago, see
    /// `SlowCheckGrace`), or what failed there.
    public var checks: [String: String]

    /// Whether any check served only within its grace: the gate is up but busy.
    public var slow: Bool { checks.values.contains { $0.hasPrefix(SlowCheckGrace.slowPrefix) } }

    public init(region: String, gate: String, redis: String, logic: [String: String]) {
        self.region = region
        self.gate = gate
        checks = ["redis": redis]
        for (address, outcome) in logic { checks["logic \(address)"] = outcome }
        healthy = SlowCheckGrace.serves(redis) && logic.values.contains(where: SlowCheckGrace.serves)
    }
}
