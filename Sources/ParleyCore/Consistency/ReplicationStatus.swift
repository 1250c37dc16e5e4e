/// What a region's sync answers at `GET /status` (docs/OPERATIONS.md,
/// "Replication status"), and `parley check` reads for its lag matrix.
public struct ReplicationStatus: Codable, Sendable, Equatable {
    public var region: String
    public var applied: [String: UInt64]
    public var peers: [String: PeerReplicationStatus]
    public var eventsApplied: UInt64
    /// Events applied per second over the last ten seconds.
    public var applyRatePerSecond: Double
    /// Set when the region's own log went backwards: it takes no changes.
    public var fence: OriginFence?

    public init(
        region: String, applied: [String: UInt64], peers: [String: PeerReplicationStatus], eventsApplied: UInt64, applyRatePerSecond: Double,
        fence: OriginFence? = nil
    ) {
        self.region = region
        self.fence = fence
        self.applied = applied
        self.peers = peers
        self.eventsApplied = eventsApplied
        self.applyRatePerSecond = applyRatePerSecond
    }
}

public struct PeerReplicationStatus: Codable, Sendable, Equatable {
    public var connected: Bool
    /// Events the peer holds (as of its last batch) that this region has not applied.
    public var lagEvents: UInt64
    /// How long this region has been behind the peer; 0 when caught up.
    public var lagSeconds: Double
    /// Milliseconds since the peer's last batch was received, nil before the first.
    public var lastBatchAgoMs: UInt64?

    public init(connected: Bool, lagEvents: UInt64, lagSeconds: Double, lastBatchAgoMs: UInt64?) {
        self.connected = connected
        self.lagEvents = lagEvents
        self.lagSeconds = lagSeconds
        self.lastBatchAgoMs = lastBatchAgoMs
    }
}
