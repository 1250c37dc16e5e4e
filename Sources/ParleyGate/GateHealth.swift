import Foundation
import ParleyCore
import ParleyProbe
import ParleyProto
import ParleyRedis
import ParleyRPC

/// Whether this gate can serve its devices, for its `GET /health`: its Redis
/// answers PING, and at least one logic instance answers the `Health` RPC with
/// its PostgreSQL and Redis working, each within `timeout`. This is what
/// `parley route` probes to decide whether the region can serve; whether it
/// can replicate is sync's own `GET /health` (docs/OPERATIONS.md, "Health and failover control").
struct GateHealth: Sendable {
    let region: String
    let node: String
    let redis: RedisClient
    let logic: [String]
    let pool: RPCClientPool
    let timeout: Duration

    func report() async -> GateHealthReport {
        async let redis = checkOutcome { [redis, timeout] in
            let answer = try await withDeadline(timeout, "redis") { try await redis.send("PING") }
            guard case .status("PONG") = answer else { throw PeerError(.malformedAnswer, peer: "redis", "PING answered \(answer)") }
        }
        let logic = await withTaskGroup(of: (String, String).self) { group in
            for address in self.logic {
                group.addTask { [pool, timeout] in
                    let outcome = await checkOutcome {
                        let client = Parley_Logic.Client(wrapping: try pool.client(for: address))
                        let report = try await client.health(Parley_HealthRequest(), options: .failFast(timeout: timeout))
                        let failed = report.checks.filter { $0.value != "ok" }.sorted { $0.key < $1.key }
                        guard failed.isEmpty else { throw PeerError(.unreachable, peer: "logic", failed.map { "\($0.key): \($0.value)" }.joined(separator: "; ")) }
                    }
                    return (address, outcome)
                }
            }
            return await group.reduce(into: [String: String]()) { $0[$1.0] = $1.1 }
        }
        return GateHealthReport(region: region, gate: node, redis: await redis, logic: logic)
    }

    /// The report as HTTP: 200 when healthy, else 503, with the JSON report.
    func answer() async -> (healthy: Bool, body: Data) {
        let report = await report()
        return (report.healthy, (try? JSONEncoder().encode(report)) ?? Data())
    }
}
