/// What a region's `GET /health` (served by its sync) answers, and what
/// `parley route` probes: 200 when every part of the region works, else 503.
public struct RegionHealthReport: Codable, Sendable, Equatable {
    public var region: String
    public var healthy: Bool
    /// Each part checked (`postgres`, `redis`, `logic`): "ok", or what failed.
    public var checks: [String: String]
    /// The largest replication lag behind any peer. Reported, not judged
    /// here: a region behind its peers still serves its own clients; route
    /// judges it only when the cluster file sets `maxLagSeconds`.
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
