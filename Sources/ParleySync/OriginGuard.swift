import Logging
import ParleyCore
import ParleyStore
import Synchronization

/// The log never goes backwards (docs/REPLICATION.md): every batch a peer
/// sends says how much of each origin it holds. A peer holding more of this
/// region's own origin than its database does means the database lost
/// committed events (an asynchronous replica promoted by hand, a restore
/// from backup); new commits would reuse their seqs for other events. The
/// guard then fences the origin in the store, under its row lock, so no
/// commit takes those seqs, and tells the operator how to recover.
final class OriginGuard: Sendable {
    let region: String
    let store: RegionStore
    let logger: Logger
    /// The highest own seq the database was seen to hold: heads only grow,
    /// so a peer at or below it needs no query.
    private let knownHead = Atomic<UInt64>(0)
    private let fenced = Mutex<OriginFence?>(nil)

    init(region: String, store: RegionStore, logger: Logger) {
        self.region = region
        self.store = store
        self.logger = logger
    }

    /// The fence this process set or found, for the status (the store's row is authoritative).
    var fence: OriginFence? { fenced.withLock { $0 } }

    /// Checks what `peer` holds of this region's origin against the database.
    func check(peer: String, holds: UInt64) async throws {
        guard holds > knownHead.load(ordering: .relaxed) else { return }
        let head = try await store.ownHead()
        knownHead.store(head, ordering: .relaxed)
        guard holds > head else { return }
        let fence = OriginFence(origin: region, peer: peer, peerHolds: holds, localHead: head, noticedAtMs: WallClock.milliseconds())
        if try await store.fence(fence) {
            fenced.withLock { $0 = fence }
            logger.critical("this region's log went backwards; fenced", metadata: [
                "peer": "\(peer)", "peerHolds": "\(holds)", "localHead": "\(head)", "advice": "\(fence.advice)",
            ])
        } else if fence.peerHolds > head, let existing = try await store.currentFence() {
            fenced.withLock { $0 = existing }
        }
    }
}
