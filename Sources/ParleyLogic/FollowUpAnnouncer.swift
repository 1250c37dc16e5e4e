import Logging
import ParleyCore
import ParleyProto
import ParleyRedis
import ServiceLifecycle

/// Announces each committed run of this origin's events on the region's
/// follow-up stream for `parley ext` (docs/ARCHITECTURE.md, "Follow-up work:
/// ext"). Never blocks the committer: announcements that pile up while one
/// write is in flight go out together, pipelined. One that fails is only
/// logged; ext finds the events it never heard of in the log.
final class FollowUpAnnouncer: Service, Sendable {
    private let redis: RedisClient
    private let logger: Logger
    private let queue = BatchQueue<FollowUpWork>(maxBatch: 1024)

    init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    /// Called after a batch commits, with its events (dense seqs of one origin).
    func announce(_ events: [Parley_Event]) {
        guard let first = events.first, let last = events.last else { return }
        queue.push(FollowUpWork(origin: first.origin, seqs: first.seq...last.seq))
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            while let batch = await queue.next() { await write(batch) }
        } onGracefulShutdown: {
            self.queue.close()
        }
    }

    private func write(_ batch: [FollowUpWork]) async {
        let commands = batch.map { work in
            ["XADD", FollowUpWork.stream, "MAXLEN", "~", String(FollowUpWork.maxLength), "*"] + work.fields
        }
        do {
            let replies = try await redis.pipeline(commands)
            if let failed = replies.first(where: { if case .error = $0 { true } else { false } }) {
                throw RedisError("\(failed)")
            }
        } catch {
            logger.warning("follow-up announcement failed; ext derives the work from the log", metadata: [
                "error": "\(error)", "origin": "\(batch[0].origin)", "first": "\(batch[0].seqs.lowerBound)",
            ])
        }
    }
}
