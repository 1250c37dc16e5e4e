import Logging
import ParleyCore
import ParleyPresence
import ParleyRedis
import ParleyStore
import ServiceLifecycle

/// Takes follow-up work from the region's stream as a member of ext's
/// consumer group, does it, and acknowledges it (at least once: a job is
/// acknowledged only after its effect is stored). Work another consumer took
/// and left pending longer than `claimIdle` (it died) is claimed here with
/// `XAUTOCLAIM`. A job's effect is idempotent (`RegionStore.recordDone`),
/// so doing it twice changes nothing.
struct FollowUpWorker: Service {
    let configuration: ExtConfiguration
    let store: RegionStore
    let presence: Presence
    /// Its own connection: a blocked XREADGROUP holds it.
    let stream: RedisClient
    let metrics: ExtMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            var lastClaim = ContinuousClock.now - configuration.claimIdle
            var lastMeasured = ContinuousClock.now - .seconds(1)
            while !Task.isCancelled {
                if ContinuousClock.now - lastMeasured >= .seconds(1) {
                    lastMeasured = ContinuousClock.now
                    await metrics.measureQueue(stream)
                }
                do {
                    if ContinuousClock.now - lastClaim >= configuration.claimIdle / 2 {
                        lastClaim = ContinuousClock.now
                        try await claimAbandoned()
                    }
                    try await readNew()
                    failures = 0
                } catch is CancellationError {
                    return
                } catch {
                    failures += 1
                    logger.warning("follow-up work: retrying", metadata: ["error": "\(error)", "failures": "\(failures)"])
                    try? await Task.sleep(for: Backoff.internalLink.delay(afterFailures: failures))
                }
            }
        }
    }

    /// New entries for this consumer, waiting up to a second for them.
    private func readNew() async throws {
        let reply = try await stream.send([
            "XREADGROUP", "GROUP", FollowUpWork.group, configuration.consumer, "COUNT", "16", "BLOCK", "1000",
            "STREAMS", FollowUpWork.stream, ">",
        ])
        if case .error(let message) = reply {
            // A flushed or new Redis has no group: make it, from the start of what the stream holds.
            guard message.hasPrefix("NOGROUP") else { throw RedisError(message) }
            try await createGroup()
            return
        }
        // [[stream, [[id, [field, value, ...]], ...]]], or null after the wait.
        for streamReply in reply.array ?? [] {
            guard let entries = streamReply.array?.last?.array else { continue }
            try await handle(entries)
        }
    }

    /// Entries pending for longer than `claimIdle` on any consumer, taken over.
    private func claimAbandoned() async throws {
        var cursor = "0-0"
        repeat {
            let reply = try await stream.send([
                "XAUTOCLAIM", FollowUpWork.stream, FollowUpWork.group, configuration.consumer,
                String(configuration.claimIdle.milliseconds), cursor, "COUNT", "64",
            ])
            if case .error(let message) = reply {
                guard message.hasPrefix("NOGROUP") else { throw RedisError(message) }
                try await createGroup()
                return
            }
            guard let parts = reply.array, parts.count >= 2, let next = parts[0].string, let entries = parts[1].array else { return }
            if !entries.isEmpty { logger.info("claimed abandoned follow-up work", metadata: ["entries": "\(entries.count)"]) }
            try await handle(entries)
            cursor = next
        } while cursor != "0-0"
    }

    private func createGroup() async throws {
        let reply = try await stream.send(["XGROUP", "CREATE", FollowUpWork.stream, FollowUpWork.group, "0", "MKSTREAM"])
        if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") { throw RedisError(message) }
        logger.info("created the follow-up consumer group", metadata: ["stream": "\(FollowUpWork.stream)"])
    }

    /// Does each entry's work, then acknowledges it.
    private func handle(_ entries: [RESPValue]) async throws {
        for entry in entries {
            guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { continue }
            // A deleted entry claimed by XAUTOCLAIM comes back without fields.
            if let fields = parts[1].array?.compactMap(\.string), let work = FollowUpWork(fields: fields) {
                for job in work.split(size: configuration.jobSize) { try await perform(job) }
            } else {
                logger.warning("dropping a follow-up entry that names no events", metadata: ["id": "\(id)"])
            }
            let ack = try await stream.send(["XACK", FollowUpWork.stream, FollowUpWork.group, id])
            if case .error(let message) = ack { throw RedisError(message) }
        }
    }

    /// One run of events: who is owed a notification, recorded with the
    /// events as done in one statement.
    func perform(_ work: FollowUpWork) async throws {
        let started = ContinuousClock.now
        defer { metrics.jobLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
        let count = Int(work.seqs.upperBound - work.seqs.lowerBound + 1)
        let events = try await store.events(origin: work.origin, after: work.seqs.lowerBound - 1, limit: count)
        guard let last = events.last?.seq else { return }  // not in this region's log (yet): nothing to do
        var owed: [OwedNotification] = []
        if configuration.pushGateway != nil {
            let users = Array(OfflineNotifications.recipients(of: events))
            let settings = try await store.settings(of: users)
            let withTokens = users.filter { user in settings[user]?.keys.contains { if case .pushToken = $0 { true } else { false } } == true }
            let online = try await presence.locate(withTokens).mapValues { Set($0.map(\.deviceID)) }
            owed = OfflineNotifications.owed(by: events, settings: settings, online: online)
        }
        let fresh = try await store.recordDone(
            origin: work.origin, first: work.seqs.lowerBound, last: last, owed: owed, collapse: configuration.collapse
        )
        logger.debug("follow-up work done", metadata: [
            "origin": "\(work.origin)", "first": "\(work.seqs.lowerBound)", "last": "\(last)", "new": "\(fresh)", "owed": "\(owed.count)",
        ])
    }
}
