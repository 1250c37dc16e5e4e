import ParleyCore
import ParleyProbe
import ParleyRPC
import ParleyStore

/// Whether the region can replicate, for `GET /health` on the sync's status
/// listener: this sync runs and its PostgreSQL answers a query; the lag
/// behind each peer is reported with it. Route shows it but moves no client
/// on it: whether a region can serve its users is the gates' `GET /health`
/// (docs/OPERATIONS.md, "Health and failover control").
struct RegionHealthCheck: Sendable {
    let region: String
    let store: RegionStore
    let monitor: ReplicationMonitor
    let watcher: LogWatcher
    let timeout: Duration

    func run() async -> RegionHealthReport {
        let postgres = await checkOutcome { [store, timeout] in
            _ = try await withDeadline(timeout, "postgres") { try await store.ping() }
        }
        let status = monitor.status(local: watcher.current)
        return RegionHealthReport(
            region: region, checks: ["postgres": postgres],
            maxLagSeconds: status.peers.values.map(\.lagSeconds).max() ?? 0,
            maxLagEvents: status.peers.values.map(\.lagEvents).max() ?? 0
        )
    }
}
