import Logging
import ParleyCore
import ParleyStore
import ServiceLifecycle

/// How an ext instance runs broadcasts (`parley ext --broadcast-…`).
public struct BroadcastSettings: Sendable {
    /// Notices posted together (pipelined to logic, committed in its group commits).
    public var batch = 500
    /// Notices per second this instance posts at most, so a broadcast
    /// never crowds out the region's conversations.
    public var rate = 600
    /// How long a broadcast stays with an instance that stopped renewing it.
    public var lease: Duration = .seconds(15)
    /// How often an idle runner looks for broadcasts other instances took in.
    public var poll: Duration = .seconds(1)

    public init() {}
}

/// Runs the platform API's broadcasts: takes an unfinished one (a lease in
/// PostgreSQL, so several ext instances share them and one that dies hands
/// its broadcast over), posts its notices to the recipients in batches in
/// user id order, and stores how far it got after each batch. A run cut
/// anywhere resumes from the last stored batch; the notices of a batch posted
/// again are duplicates (`b/<broadcast_id>/<user>`), so nobody gets one twice
/// (docs/ARCHITECTURE.md, "Broadcasts").
final class BroadcastRunner: Service, Sendable {
    private let region: String
    private let owner: String
    private let settings: BroadcastSettings
    private let store: RegionStore
    private let poster: NoticePoster
    private let logger: Logger
    private let kicks: AsyncStream<Void>
    private let kick: AsyncStream<Void>.Continuation

    init(region: String, owner: String, settings: BroadcastSettings, store: RegionStore, poster: NoticePoster, logger: Logger) {
        self.region = region
        self.owner = owner
        self.settings = settings
        self.store = store
        self.poster = poster
        self.logger = logger
        (kicks, kick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// A broadcast was just created here: look now rather than at the next poll.
    func wake() { kick.yield() }

    func run() async throws {
        let kick = self.kick, poll = settings.poll
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    kick.yield()
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: poll) }
                }
                kick.finish()
            }
            for await _ in kicks {
                do {
                    while !Task.isShuttingDownGracefully, let broadcast = try await store.leaseBroadcast(owner: owner, lease: settings.lease) {
                        try await run(broadcast)
                    }
                } catch where !Task.isCancelled && !Task.isShuttingDownGracefully {
                    logger.warning("broadcast round failed", metadata: ["error": "\(error)"])
                } catch {
                    // Stopping: the broadcast stays leased to this name and resumes at its next start.
                }
            }
            group.cancelAll()
        }
    }

    private func run(_ broadcast: BroadcastRecord) async throws {
        logger.info("broadcast taken", metadata: [
            "service": "\(broadcast.service)", "broadcast_id": "\(broadcast.broadcastID)", "scope": "\(broadcast.scope.rawValue)",
            "after_user": "\(broadcast.afterUser)", "reached": "\(broadcast.reached)",
        ])
        var after = broadcast.afterUser
        var reached = broadcast.reached
        while !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            let users = try await store.broadcastRecipients(scope: broadcast.scope, region: region, after: after, limit: settings.batch)
            guard let last = users.last else {
                guard try await store.advanceBroadcast(
                    broadcast, owner: owner, afterUser: after, reached: 0, failed: 0, done: true, lease: settings.lease
                ) else { return }
                logger.info("broadcast done", metadata: [
                    "service": "\(broadcast.service)", "broadcast_id": "\(broadcast.broadcastID)", "reached": "\(reached)",
                ])
                return
            }
            let outcomes = await poster.post(service: broadcast.service, body: broadcast.body, to: users) {
                PlatformIDs.broadcastMessageID(broadcast.broadcastID, to: $0)
            }
            var batchReached: Int64 = 0, batchFailed: Int64 = 0
            var unstored: String?
            for outcome in outcomes {
                switch outcome {
                case .posted, .duplicate: batchReached += 1
                case .refused(let error):
                    batchFailed += 1
                    logger.error("broadcast notice refused", metadata: ["broadcast_id": "\(broadcast.broadcastID)", "error": "\(error)"])
                case .failed(let reason): unstored = reason
                }
            }
            if let unstored {
                // Not stored, or not known to be: the same batch again once logic is back.
                logger.warning("broadcast batch failed; retrying it", metadata: [
                    "broadcast_id": "\(broadcast.broadcastID)", "after_user": "\(after)", "error": "\(unstored)",
                ])
                guard try await store.advanceBroadcast(
                    broadcast, owner: owner, afterUser: after, reached: 0, failed: 0, done: false, lease: settings.lease
                ) else { return }
                try await Task.sleep(for: .seconds(1))
                continue
            }
            guard try await store.advanceBroadcast(
                broadcast, owner: owner, afterUser: last, reached: batchReached, failed: batchFailed, done: false, lease: settings.lease
            ) else {
                logger.warning("broadcast taken over by another instance", metadata: ["broadcast_id": "\(broadcast.broadcastID)"])
                return
            }
            after = last
            reached += batchReached
            // At most `rate` notices a second.
            let due = started + .seconds(Double(users.count) / Double(max(settings.rate, 1)))
            if due > .now { try await Task.sleep(until: due) }
        }
    }
}
