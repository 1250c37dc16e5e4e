import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ServiceLifecycle

/// Carries this region's typing notices to every peer region's sync, which
/// hands them to its pushing logic instance (docs/ARCHITECTURE.md, "Typing
/// across regions"). Best effort, like the notice itself: a notice waits
/// for one call at a time per peer, and one older than `maxAge` is dropped,
/// since it would tell of typing that is over. A peer that is down or slow
/// therefore costs at most `maxAge` of notices in memory, never a retry.
final class TypingForwarder: Service, Sendable {
    private struct Queued: Sendable {
        var notice: Parley_TypingNotice
        var at: ContinuousClock.Instant
    }

    private let region: String
    /// Peer region → its sync address, and the notices waiting for it.
    private let queues: [(peer: String, address: String, queue: BatchQueue<Queued>)]
    private let pool: RPCClientPool
    private let maxAge: Duration
    private let logger: Logger

    init(region: String, peers: [String: String], pool: RPCClientPool, maxAge: Duration = .seconds(2), logger: Logger) {
        self.region = region
        self.queues = peers.sorted { $0.key < $1.key }.map { ($0.key, $0.value, BatchQueue<Queued>(maxBatch: 4_096)) }
        self.pool = pool
        self.maxAge = maxAge
        self.logger = logger
    }

    func forward(_ notice: Parley_TypingNotice) {
        let now = ContinuousClock.now
        for entry in queues { entry.queue.push(Queued(notice: notice, at: now)) }
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for entry in queues {
                group.addTask { await self.send(to: entry.peer, at: entry.address, from: entry.queue) }
            }
            try? await gracefulShutdown()
            for entry in queues { entry.queue.close() }
        }
    }

    private func send(to peer: String, at address: String, from queue: BatchQueue<Queued>) async {
        var failing = false
        while let batch = await queue.next() {
            let cutoff = ContinuousClock.now - maxAge
            let fresh = batch.filter { $0.at >= cutoff }.map(\.notice)
            guard !fresh.isEmpty else { continue }
            do {
                let sync = Parley_Sync.Client(wrapping: try pool.client(for: address))
                for part in stride(from: 0, to: fresh.count, by: 256) {
                    let request = Parley_RelayTypingRequest.with {
                        $0.fromRegion = region
                        $0.notices = Array(fresh[part..<min(part + 256, fresh.count)])
                    }
                    _ = try await sync.relayTyping(request, options: .failFast(timeout: maxAge))
                }
                if failing { logger.info("typing notices reach the peer again", metadata: ["peer": "\(peer)"]) }
                failing = false
            } catch {
                // Logged once per outage: a down peer is the drills' daily bread.
                if !failing { logger.notice("typing notices to a peer are dropped", metadata: ["peer": "\(peer)", "error": "\(error)"]) }
                failing = true
            }
        }
    }
}
