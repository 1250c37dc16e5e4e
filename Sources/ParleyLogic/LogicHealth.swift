import ParleyProbe
import ParleyProto
import ParleyRedis
import ParleyRPC
import ParleyStore

/// Whether this instance can serve requests: its PostgreSQL runs a query and
/// its Redis answers PING, each within `timeout`. Asked by the gates over the
/// `Health` RPC for their `GET /health` (docs/OPERATIONS.md, "Health and failover control").
struct LogicHealth: Sendable {
    let store: RegionStore
    let redis: RedisClient
    let timeout: Duration

    func report() async -> Parley_HealthReport {
        async let postgres = checkOutcome { [store, timeout] in
            try await withDeadline(timeout, "postgres") { try await store.ping() }
        }
        async let redis = checkOutcome { [redis, timeout] in
            let answer = try await withDeadline(timeout, "redis") { try await redis.send("PING") }
            guard case .status("PONG") = answer else { throw PeerError(.malformedAnswer, peer: "redis", "PING answered \(answer)") }
        }
        let checks = ["postgres": await postgres, "redis": await redis]
        return .with { $0.checks = checks }
    }
}
