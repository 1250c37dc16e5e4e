/// A region's own log went backwards: its database lost events of its own
/// origin that a peer still holds (an asynchronous replica promoted by hand,
/// a restore from backup). Reusing those seqs would give two different
/// events one id, so the region takes no changes until its operator
/// re-imports the missing events from the peers (`parley recover`,
/// docs/OPERATIONS.md, "A region's log went backwards").
public struct OriginFence: Codable, Sendable, Equatable {
    /// The region, which is also the origin whose log went backwards.
    public var origin: String
    /// The peer that showed it, and the last seq of `origin` it holds.
    public var peer: String
    public var peerHolds: UInt64
    /// The last seq of `origin` this region's database held when it noticed.
    public var localHead: UInt64
    /// When it noticed (wall clock, milliseconds since 1970).
    public var noticedAtMs: UInt64

    public init(origin: String, peer: String, peerHolds: UInt64, localHead: UInt64, noticedAtMs: UInt64) {
        self.origin = origin
        self.peer = peer
        self.peerHolds = peerHolds
        self.localHead = localHead
        self.noticedAtMs = noticedAtMs
    }

    /// What happened and what to do, for logs, the status and the checker.
    public var advice: String {
        "\(origin)'s database lost events \(origin)-\(localHead + 1)...\(origin)-\(peerHolds) that \(peer) holds: "
            + "\(origin) is fenced and takes no changes; re-import them with `parley recover --region \(origin)`"
    }
}
