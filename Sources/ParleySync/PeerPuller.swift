import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ServiceLifecycle

/// Pulls from one peer, from this region's applied vector on, the origins
/// `DirectLinks` says to ask it for, and resumes from the applied vector
/// after any disconnect or when that set of origins changes.
struct PeerPuller: Service {
    let region: String
    let peer: String
    let address: String
    let pool: RPCClientPool
    let applier: ReplicationApplier
    let monitor: ReplicationMonitor
    let links: DirectLinks
    let logger: Logger

    func run() async throws {
        await reconnecting("peer \(peer)", logger: logger) {
            let origins = links.wanted(from: peer)
            // Our own origin is "fully applied" in this vector: peers skip it.
            let after = try await applier.vector()
            let request = Parley_PullRequest.with {
                $0.peer = region
                $0.after = after.entries
                $0.origins = origins.sorted()
                // Large batches: catch-up cost is per transaction as much as per event.
                $0.batchSize = 2_000
            }
            let sync = Parley_Sync.Client(wrapping: try pool.client(for: address))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer {
                        monitor.connected(peer, false)
                        // Restarted on purpose (the set of origins changed): the link stays up,
                        // or every restart would make the other pullers restart in turn.
                        if !Task.isCancelled { links.set(peer, up: false) }
                    }
                    try await sync.pull(request, options: .failFast(timeout: nil)) { response in
                        monitor.connected(peer, true)
                        links.set(peer, up: true)
                        for try await batch in response.messages.cancelOnGracefulShutdown() {
                            monitor.received(from: peer, peerApplied: VersionVector(batch.applied))
                            try await applier.receive(batch.events)
                        }
                    }
                }
                // Another direct link went down or came back: ask again with the new set.
                group.addTask { await links.waitForChange(from: peer, current: origins) }
                try await group.next()
                group.cancelAll()
            }
        }
    }
}
