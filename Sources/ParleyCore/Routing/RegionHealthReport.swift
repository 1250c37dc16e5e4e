/// What a sync's `GET /health` answers: whether the region can replicate (its
/// sync runs and that sync's PostgreSQL answers), with its lag; 200 or 503.
/// Route shows it and moves no client on it (`GateHealthReport` decides that).
public struct RegionHealthReport: Codable, Sendable, Equatable {
    public var region: String
    public var healthy: Bool
    /// Each part checked (`postgres`): "ok", or what failed.
    public var checks: [String: String]
    /// The largest replication lag behind any peer. Reported, not judged
    /// here: a region behind its peers still serves its own clients; route
    /// marks it not replicating when the cluster file sets `maxLagSeconds`.
    public var maxLagSeconds: Double
    public var maxLagEvents: UInt64

    public init(region: String, checks: [String: String], maxLagSeconds: Double, maxLagEvents: UInt64) {
        self.region = region
        self.checks = checks
        healthy = checks.values.allSatisfy { $0 == "ok" }
        self.maxLagSeconds = maxLagSeconds
        self.maxLagEvents = maxLagEvents
    }
}
