import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ServiceLifecycle
import Synchronization

/// Pulls from one peer, from this region's applied vector on, the origins
/// `DirectLinks` says to ask it for, and resumes from the applied vector
/// after any disconnect or when that set of origins changes.
///
/// A stream that stays open but brings nothing for `stallTimeout` (the peer
/// sends an empty batch every second when idle) is restarted: a connection
/// that lives while its stream is stuck must not stop replication.
struct PeerPuller: Service {
    let region: String
    let peer: String
    let address: String
    let pool: RPCClientPool
    let applier: ReplicationApplier
    let monitor: ReplicationMonitor
    let links: DirectLinks
    let originGuard: OriginGuard
    let logger: Logger
    var stallTimeout: Duration = .seconds(10)

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
            // When this puller started waiting for the peer's next batch (nil
            // while it handles one: applying may rightly hold the stream back).
            let waitingSince = WaitingSince()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer {
                        monitor.connected(peer, false)
                        // Restarted on purpose (the set of origins changed): the link stays up,
                        // or every restart would make the other pullers restart in turn.
                        if !Task.isCancelled { links.set(peer, up: false) }
                    }
                    try await sync.pull(request, options: .batchedLink) { response in
                        monitor.connected(peer, true)
                        links.set(peer, up: true)
                        for try await batch in response.messages.cancelOnGracefulShutdown() {
                            waitingSince.set(nil)
                            let peerApplied = VersionVector(batch.applied)
                            monitor.received(from: peer, peerApplied: peerApplied)
                            try await originGuard.check(peer: peer, holds: peerApplied[region])
                            try await applier.receive(batch.events)
                            waitingSince.set(.now)
                        }
                    }
                }
                group.addTask { [stallTimeout, logger, peer] in
                    while true {
                        try await Task.sleep(for: stallTimeout / 4)
                        let since = waitingSince.value
                        if let since, ContinuousClock.now - since > stallTimeout {
                            logger.warning("pull stream stalled; restarting it", metadata: ["peer": "\(peer)", "silentFor": "\(ContinuousClock.now - since)"])
                            throw PullStalled(peer: peer, timeout: stallTimeout)
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

/// A pull stream brought nothing, not even the idle beat, for `timeout`.
struct PullStalled: Error, CustomStringConvertible {
    let peer: String
    let timeout: Duration
    var description: String { "the pull stream from \(peer) brought nothing for \(timeout)" }
}

/// When a puller started waiting for its stream's next batch; nil while it handles one.
private final class WaitingSince: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(.now)
    var value: ContinuousClock.Instant? { instant.withLock { $0 } }
    func set(_ value: ContinuousClock.Instant?) { instant.withLock { $0 = value } }
}
