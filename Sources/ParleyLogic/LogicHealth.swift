import ParleyCore
import ParleyProbe
import ParleyProto
import ParleyRedis
import ParleyRPC
import ParleyStore
import Synchronization

/// Whether this instance can serve requests: its PostgreSQL runs a query and
/// its Redis answers PING, each within `timeout`. Asked by the gates over the
/// `Health` RPC for their `GET /health` (docs/OPERATIONS.md, "Health and failover control").
///
/// With a `failoverGrace`, PostgreSQL failing within that long of its last
/// success reads "ok, failing over: ..." (a pass): the standby is being
/// promoted, commits wait for it, and the region must not be evacuated for a
/// pause (docs/DEPLOYMENT.md, "How the pieces fail").
struct LogicHealth: Sendable {
    let store: RegionStore
    let redis: RedisClient
    let timeout: Duration
    let failoverGrace: Duration
    private let postgresState = Latest<PostgresState>()

    /// When PostgreSQL last answered, and whether it failed since.
    private struct PostgresState {
        var lastSuccess: ContinuousClock.Instant
        var failing = false
    }

    init(store: RegionStore, redis: RedisClient, timeout: Duration, failoverGrace: Duration) {
        self.store = store
        self.redis = redis
        self.timeout = timeout
        self.failoverGrace = failoverGrace
    }

    func report() async -> Parley_HealthReport {
        let fence = Latest<OriginFence>()
        // While it fails over, a ping waits for nothing: each one would hold
        // the answer for the whole deadline, and on a busy host the gate's
        // answer to route would come too late and read as a slow region.
        let failingOver = postgresState.value.map { $0.failing && ContinuousClock.now - $0.lastSuccess < failoverGrace } ?? false
        let deadline = failingOver ? min(timeout, .milliseconds(50)) : timeout
        async let postgres = checkOutcome { [store] in
            fence.set(try await withDeadline(deadline, "postgres") { try await store.ping() })
        }
        async let redis = checkOutcome { [redis, timeout] in
            let answer = try await withDeadline(timeout, "redis") { try await redis.send("PING") }
            guard case .status("PONG") = answer else { throw PeerError(.malformedAnswer, peer: "redis", "PING answered \(answer)") }
        }
        var checks = ["postgres": graced(await postgres), "redis": await redis]
        // A region whose own log went backwards must not take changes: its
        // gates fail their health and route sends its devices elsewhere.
        checks["log"] = fence.value.map { "fenced: \($0.advice)" } ?? "ok"
        return .with { $0.checks = checks }
    }

    private func graced(_ outcome: String) -> String {
        let now = ContinuousClock.now
        return postgresState.update { state in
            if outcome == "ok" {
                state = PostgresState(lastSuccess: now)
                return outcome
            }
            state?.failing = true
            guard let since = state?.lastSuccess, now - since < failoverGrace else { return outcome }
            return "ok, failing over: \(outcome)"
        }
    }
}

/// A value shared by concurrent checks: the last one seen, if any.
private final class Latest<Value: Sendable>: Sendable {
    private let state = Mutex<Value?>(nil)
    var value: Value? { state.withLock { $0 } }
    func set(_ value: Value?) { state.withLock { $0 = value } }
    func update<Result>(_ body: (inout Value?) -> Result) -> Result { state.withLock { body(&$0) } }
}
