import Logging
import ParleyCore
import ParleyRedis
import ParleyStore
import ServiceLifecycle

/// Keeps ext's cursor in PostgreSQL moving, and finds work that was lost:
/// events that were in the log `rederiveAfter` ago and are still not done
/// (Redis flushed or restarted with its stream, an announcement that
/// failed, ext down longer than the stream keeps entries) are announced
/// again. Every ext instance runs one; one at a time does the round.
struct CursorKeeper: Service {
    let configuration: ExtConfiguration
    let store: RegionStore
    let redis: RedisClient
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await round()
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("follow-up cursor round failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: configuration.cursorInterval)
            }
        }
    }

    private func round() async throws {
        guard let progress = try await store.advanceExtCursor(origin: configuration.region, rederiveAfter: configuration.rederiveAfter),
              let lost = progress.lost
        else { return }
        let work = FollowUpWork(origin: configuration.region, seqs: lost).split(size: configuration.jobSize)
        logger.warning("re-deriving follow-up work the stream lost", metadata: [
            "origin": "\(configuration.region)", "first": "\(lost.lowerBound)", "last": "\(lost.upperBound)",
        ])
        let replies = try await redis.pipeline(work.map { ["XADD", FollowUpWork.stream, "*"] + $0.fields })
        if let failed = replies.first(where: { if case .error = $0 { true } else { false } }) { throw RedisError("\(failed)") }
    }
}
