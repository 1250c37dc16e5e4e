import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ServiceLifecycle

/// Pulls one peer's copy of every origin's log, from this region's applied
/// vector on, and resumes from the applied vector after any disconnect.
struct PeerPuller: Service {
    let region: String
    let peer: String
    let address: String
    let pool: RPCClientPool
    let applier: ReplicationApplier
    let monitor: ReplicationMonitor
    let logger: Logger

    func run() async throws {
        await reconnecting("peer \(peer)", logger: logger) {
            // Our own origin is "fully applied" in this vector: peers skip it.
            let after = try await applier.vector()
            let request = Parley_PullRequest.with {
                $0.peer = region
                $0.after = after.entries
                // Large batches: catch-up cost is per transaction as much as per event.
                $0.batchSize = 2_000
            }
            let sync = Parley_Sync.Client(wrapping: try pool.client(for: address))
            defer { monitor.connected(peer, false) }
            try await sync.pull(request, options: .failFast(timeout: nil)) { response in
                monitor.connected(peer, true)
                for try await batch in response.messages.cancelOnGracefulShutdown() {
                    monitor.received(from: peer, peerApplied: VersionVector(batch.applied))
                    try await applier.receive(batch.events)
                }
            }
        }
    }
}
