import Foundation
import GRPCCore
import ParleyCore
import ParleyProbe
import ParleyProto
import ParleyRedis
import ParleyRPC
import Synchronization

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
    /// Checks that time out read "slow" for this long after their last success.
    let grace = Grace(SlowCheckGrace(graceMilliseconds: 10_000))

    final class Grace: Sendable {
        let state: Mutex<SlowCheckGrace>
        init(_ grace: SlowCheckGrace) { state = Mutex(grace) }
    }

    func report() async -> GateHealthReport {
        async let redis = check { [redis, timeout] in
            let answer = try await withDeadline(timeout, "redis") { try await redis.send("PING") }
            guard case .status("PONG") = answer else { throw PeerError(.malformedAnswer, peer: "redis", "PING answered \(answer)") }
        }
        let logic = await withTaskGroup(of: (String, (String, Bool)).self) { group in
            for address in self.logic {
                group.addTask { [pool, timeout] in
                    let outcome = await check {
                        let client = Parley_Logic.Client(wrapping: try pool.client(for: address))
                        let report = try await client.health(Parley_HealthRequest(), options: .failFast(timeout: timeout))
                        // "ok, failing over: ..." passes: PostgreSQL's standby is taking over (LogicHealth).
                        let failed = report.checks.filter { !$0.value.hasPrefix("ok") }.sorted { $0.key < $1.key }
                        guard failed.isEmpty else { throw PeerError(.unreachable, peer: "logic", failed.map { "\($0.key): \($0.value)" }.joined(separator: "; ")) }
                    }
                    return (address, outcome)
                }
            }
            return await group.reduce(into: [String: (String, Bool)]()) { $0[$1.0] = $1.1 }
        }
        let redisOutcome = await redis
        let now = WallClock.milliseconds()
        return grace.state.withLock { grace in
            GateHealthReport(
                region: region, gate: node,
                redis: grace.read("redis", outcome: redisOutcome.0, timedOut: redisOutcome.1, now: now),
                logic: logic.reduce(into: [:]) { read, entry in
                    read[entry.key] = grace.read("logic \(entry.key)", outcome: entry.value.0, timedOut: entry.value.1, now: now)
                }
            )
        }
    }

    /// A check's outcome ("ok" or what failed) and whether it failed by timing out.
    private func check(_ body: @escaping @Sendable () async throws -> Void) async -> (String, Bool) {
        do {
            try await body()
            return ("ok", false)
        } catch let error as PeerError {
            return ("\(error)", error.kind == .timedOut)
        } catch let error as RPCError {
            return ("\(error)", error.code == .deadlineExceeded)
        } catch {
            return ("\(error)", false)
        }
    }

    /// The report as HTTP: 200 when healthy, else 503, with the JSON report.
    func answer() async -> (healthy: Bool, body: Data) {
        let report = await report()
        return (report.healthy, (try? JSONEncoder().encode(report)) ?? Data())
    }
}
