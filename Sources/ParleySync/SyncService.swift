import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ParleyStore
import ServiceLifecycle

/// The `Sync` RPC: serves this region's copy of every origin's log to a
/// peer, from the peer's vector on, in seq order per origin, and keeps
/// serving new events as they are applied here. `response.write` waits for
/// HTTP/2 flow control, so a slow peer slows its own stream and nothing
/// piles up in memory.
struct SyncService: Parley_Sync.SimpleServiceProtocol {
    /// Who may call sync under mutual TLS: a peer region's sync pulls the
    /// log; logic instances wait for geo durability and relay typing
    /// (docs/ARCHITECTURE.md, "Mutual TLS").
    static let callers = CallerRoles([
        Parley_Sync.Method.Pull.descriptor: ["sync"],
        Parley_Sync.Method.AwaitStored.descriptor: ["logic"],
        Parley_Sync.Method.RelayTyping.descriptor: ["logic"],
    ])

    let store: RegionStore
    let watcher: LogWatcher
    let logger: Logger
    /// An idle stream still sends an empty batch this often, so the peer can
    /// tell a quiet stream from a stalled one (`PeerPuller.stallTimeout`).
    var idleBeat: Duration = .seconds(1)

    func pull(request: Parley_PullRequest, response: RPCWriter<Parley_PullBatch>, context: ServerContext) async throws {
        let after = VersionVector(request.after)
        let only = Set(request.origins)
        let batchSize = Int(request.batchSize == 0 ? 500 : min(request.batchSize, 5_000))
        logger.info("peer pulling", metadata: ["peer": "\(request.peer)", "after": "\(after)"])
        // At shutdown the stream ends; the peer resumes from its applied vector.
        try await cancelWhenGracefulShutdown {
            // An empty first batch: the peer knows at once that the stream is up and
            // how far behind it is, even when there is nothing to send yet.
            try await response.write(.with {
                $0.applied = watcher.current.entries
                $0.sentAtMs = WallClock.milliseconds()
            })
            var sent = after
            while !Task.isCancelled {
                let available = watcher.current
                // Origins not asked for count as fully sent, so they never wake this stream.
                for origin in available.origins where !only.isEmpty && !only.contains(origin) { sent[origin] = .max }
                var wrote = false
                for origin in available.origins where available[origin] > sent[origin] {
                    let events = try await store.events(origin: origin, after: sent[origin], limit: batchSize)
                    guard let last = events.last else { continue }
                    for part in Self.split(events) {
                        try await response.write(.with {
                            $0.events = Array(part)
                            $0.applied = available.entries
                            $0.sentAtMs = WallClock.milliseconds()
                        })
                    }
                    sent[origin] = last.seq
                    wrote = true
                }
                if !wrote, !(await watcher.wait(beyond: sent, atMost: idleBeat)) {
                    try await response.write(.with {
                        $0.applied = watcher.current.entries
                        $0.sentAtMs = WallClock.milliseconds()
                    })
                }
            }
        }
    }

    /// The most one stream message carries: well under what a peer accepts
    /// (`LinkBatch.maxMessageBytes`), whatever the events hold (16 KiB
    /// bodies, audiences of a thousand members).
    static let maxBatchBytes = 4 << 20

    /// `events` cut into runs of at most `maxBatchBytes` encoded, in order.
    static func split(_ events: [Parley_Event]) -> [ArraySlice<Parley_Event>] {
        var parts: [ArraySlice<Parley_Event>] = []
        var start = 0, bytes = 0
        for (index, event) in events.enumerated() {
            let size = ((try? event.serializedBytes() as [UInt8])?.count ?? 0) + 8
            if bytes + size > maxBatchBytes, index > start {
                parts.append(events[start..<index])
                (start, bytes) = (index, 0)
            }
            bytes += size
        }
        if start < events.count { parts.append(events[start...]) }
        return parts
    }

    func awaitStored(request: Parley_AwaitStoredRequest, context: ServerContext) async throws -> Parley_AwaitStoredResponse {
        let origin = request.event.origin
        let seq = request.event.seq
        let timeout = Duration.milliseconds(Int64(min(request.timeoutMs, 60_000)))
        let deadline = ContinuousClock.now + timeout
        var stored = false
        while true {
            let current = watcher.current
            if current[origin] >= seq {
                stored = true
                break
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero, !Task.isCancelled else { break }
            _ = await watcher.wait(beyond: current, atMost: left)
        }
        return .with { $0.stored = stored }
    }

    /// Typing notices from a peer region's users go to this region's pushing
    /// logic instance through PostgreSQL (`RegionStore.notifyTyping`).
    func relayTyping(request: Parley_RelayTypingRequest, context: ServerContext) async throws -> Parley_RelayTypingResponse {
        try await store.notifyTyping(Array(request.notices.prefix(Self.maxRelayedNotices)))
        return Parley_RelayTypingResponse()
    }

    /// Notices taken from one relay call, at most.
    static let maxRelayedNotices = 1_000
}
