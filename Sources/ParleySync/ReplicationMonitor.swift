import Foundation
import ParleyCore
import Prometheus
import Synchronization

/// What an operator asks of a region's replication: its applied vector, how
/// far it is behind each peer (in events and in seconds), and how fast it
/// applies. Fed by the pullers and the applier; read over HTTP.
final class ReplicationMonitor: Sendable {
    private struct Peer {
        var connected = false
        var reported = VersionVector()
        var lastBatchMs: UInt64?
        var behindSinceMs: UInt64?
    }

    private struct State {
        var peers: [String: Peer]
        var eventsApplied: UInt64 = 0
        /// (millisecond, events) of recent applies, for the rate.
        var recent: [(ms: UInt64, events: Int)] = []
    }

    private static let rateWindowMs: UInt64 = 10_000

    let region: String
    private let state: Mutex<State>
    private let registry = PrometheusCollectorRegistry()

    init(region: String, peers: [String]) {
        self.region = region
        state = Mutex(State(peers: Dictionary(uniqueKeysWithValues: peers.map { ($0, Peer()) })))
    }

    func connected(_ peer: String, _ isConnected: Bool) {
        state.withLock { $0.peers[peer, default: Peer()].connected = isConnected }
    }

    /// A batch arrived from `peer`, which had applied `vector` when it sent it.
    func received(from peer: String, peerApplied vector: VersionVector) {
        let now = WallClock.milliseconds()
        state.withLock { state in
            state.peers[peer, default: Peer()].reported = vector
            state.peers[peer]?.lastBatchMs = now
        }
    }

    func applied(_ events: Int) {
        let now = WallClock.milliseconds()
        state.withLock { state in
            state.eventsApplied += UInt64(events)
            state.recent.append((now, events))
            state.recent.removeAll { now - $0.ms > Self.rateWindowMs }
        }
    }

    /// The status against this region's applied vector `local`.
    func status(local: VersionVector) -> ReplicationStatus {
        let now = WallClock.milliseconds()
        return state.withLock { state in
            state.recent.removeAll { now - $0.ms > Self.rateWindowMs }
            var peers: [String: PeerReplicationStatus] = [:]
            for name in state.peers.keys {
                guard var peer = state.peers[name] else { continue }
                let behind = local.eventsBehind(peer.reported, excluding: region)
                if behind == 0 { peer.behindSinceMs = nil } else if peer.behindSinceMs == nil { peer.behindSinceMs = now }
                state.peers[name] = peer
                peers[name] = PeerReplicationStatus(
                    connected: peer.connected, lagEvents: behind,
                    lagSeconds: Double(now - (peer.behindSinceMs ?? now)) / 1000,
                    lastBatchAgoMs: peer.lastBatchMs.map { now - $0 }
                )
            }
            return ReplicationStatus(
                region: region, applied: local.entries, peers: peers, eventsApplied: state.eventsApplied,
                applyRatePerSecond: Double(state.recent.reduce(0) { $0 + $1.events }) / Double(Self.rateWindowMs / 1000)
            )
        }
    }

    /// The status in Prometheus text format.
    func prometheus(local: VersionVector) -> String {
        let status = status(local: local)
        func gauge(_ name: String, _ unit: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
            let descriptor = MetricNameDescriptor(namespace: "parley", subsystem: "sync", metricName: name, unitName: unit, helpText: help)
            registry.makeGauge(descriptor: descriptor, labels: labels).set(to: value)
        }
        for (origin, seq) in status.applied {
            gauge("applied", "seq", "Highest contiguous seq applied, per origin", [("origin", origin)], Double(seq))
        }
        for (peer, lag) in status.peers {
            let labels = [("peer", peer)]
            gauge("peer", "connected", "1 while the pull stream from the peer is open", labels, lag.connected ? 1 : 0)
            gauge("peer_lag", "events", "Events the peer holds that this region has not applied", labels, Double(lag.lagEvents))
            gauge("peer_lag", "seconds", "How long this region has been behind the peer", labels, lag.lagSeconds)
        }
        gauge("events", "applied", "Events applied from peers since start", [], Double(status.eventsApplied))
        gauge("apply_rate", "per_second", "Events applied per second over the last ten seconds", [], status.applyRatePerSecond)
        return registry.emitToString()
    }
}
