import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import ParleyStore
import ServiceLifecycle

/// `parley recover`: brings back the events a region's database lost of its
/// own origin (docs/OPERATIONS.md, "A region's log went backwards"). It pulls
/// them, in seq order, from the peer that holds the most of them, applies
/// each once every event it depends on is applied here (this region's sync,
/// running meanwhile, brings the other origins back), and lifts the fence
/// when the database holds everything that peer held.
public enum LogRecovery {
    public struct Outcome: Sendable {
        /// The peer the events came from, and the head before and after.
        public var peer: String
        public var headBefore: UInt64
        public var headAfter: UInt64
        /// The fence that was lifted (nil: there was none).
        public var fence: OriginFence?
    }

    /// - Parameters:
    ///   - peers: each peer region's sync address.
    ///   - peerStatus: asks a peer how much of each origin it holds (its
    ///     sync's `/status`): the peer to pull from is the one that holds most.
    ///   - limit: give up when a needed dependency is not applied within this.
    public static func run(
        region: String, postgres: PostgresLocation, peers: [String: String], tls: TLSIdentity?, clock: HybridLogicalClock,
        peerHolds: @escaping @Sendable (String) async throws -> UInt64, limit: Duration = .seconds(120), logger: Logger
    ) async throws -> Outcome {
        let store = RegionStore(postgres: postgres, origin: region, clock: clock, logger: logger)
        let pool = RPCClientPool(tls: tls)
        return try await withThrowingTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                await store.run()
                return nil
            }
            group.addTask {
                try await pool.run()
                return nil
            }
            group.addTask {
                try await store.prepare()
                return try await recover(
                    region: region, store: store, pool: pool, peers: peers, peerHolds: peerHolds, limit: limit, logger: logger
                )
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let outcome = result { return outcome }
            }
            throw CancellationError()
        }
    }

    private static func recover(
        region: String, store: RegionStore, pool: RPCClientPool, peers: [String: String],
        peerHolds: @Sendable (String) async throws -> UInt64, limit: Duration, logger: Logger
    ) async throws -> Outcome {
        let fence = try await store.currentFence()
        let headBefore = try await store.ownHead()
        var best: (peer: String, holds: UInt64)?
        var unreachable: [String] = []
        for peer in peers.keys.sorted() {
            do {
                let holds = try await peerHolds(peer)
                if holds > (best?.holds ?? 0) { best = (peer, holds) }
            } catch {
                unreachable.append("\(peer): \(error)")
            }
        }
        // Every peer must answer: one left out might hold the most.
        guard unreachable.isEmpty else { throw RecoveryError("peers did not say what they hold of \(region): \(unreachable.joined(separator: "; "))") }
        guard let source = best, source.holds > headBefore else {
            if fence != nil { _ = try await store.liftFence(through: headBefore) }
            return Outcome(peer: best?.peer ?? "-", headBefore: headBefore, headAfter: headBefore, fence: fence)
        }
        guard let address = peers[source.peer] else { throw RecoveryError("no sync address for \(source.peer)") }
        logger.notice("re-importing lost events", metadata: ["from": "\(source.peer)", "after": "\(headBefore)", "through": "\(source.holds)"])
        let request = Parley_PullRequest.with {
            $0.peer = region
            $0.after = [region: headBefore]
            $0.origins = [region]
            $0.batchSize = 2_000
        }
        let sync = Parley_Sync.Client(wrapping: try pool.client(for: address))
        let head = try await sync.pull(request, options: .batchedLink) { response -> UInt64 in
            var head = headBefore
            for try await batch in response.messages {
                var pending = batch.events.filter { $0.origin == region && $0.seq > head }
                while !pending.isEmpty {
                    // What is applicable now: a prefix whose dependencies on
                    // other origins this region already holds.
                    let applied = try await store.appliedVector()
                    let ready = pending.prefix { event in event.deps.allSatisfy { $0.key == region || applied[$0.key] >= $0.value } }
                    if ready.isEmpty {
                        guard try await waitForDependencies(of: pending[0], store: store, region: region, limit: limit) else {
                            throw RecoveryError("event \(region)-\(pending[0].seq) depends on \(pending[0].deps) that this region did not apply within \(limit): is its sync running?")
                        }
                        continue
                    }
                    head = try await store.applyReplicated(Array(ready), reimporting: true)[region]
                    pending.removeFirst(ready.count)
                }
                if head >= source.holds { return head }
            }
            return head
        }
        guard head >= source.holds else { throw RecoveryError("\(source.peer) ended its stream at \(region)-\(head), short of \(source.holds)") }
        guard try await store.liftFence(through: source.holds) || fence == nil else {
            throw RecoveryError("the fence stayed: the database holds \(region)-\(try await store.ownHead())")
        }
        logger.notice("re-imported; fence lifted", metadata: ["from": "\(source.peer)", "head": "\(head)"])
        return Outcome(peer: source.peer, headBefore: headBefore, headAfter: head, fence: fence)
    }

    private static func waitForDependencies(of event: Parley_Event, store: RegionStore, region: String, limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let applied = try await store.appliedVector()
            if event.deps.allSatisfy({ $0.key == region || applied[$0.key] >= $0.value }) { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}

/// What `parley recover` could not do.
public struct RecoveryError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
