import Logging
import ParleyCore
import ParleyRPC
import ParleyStore
import PostgresNIO

/// Checks the parts a region's clients depend on, for `GET /health`: its
/// PostgreSQL answers a query, its Redis answers PING, at least one of its
/// logic instances accepts connections. Gates are probed by route itself.
struct RegionHealthCheck: Sendable {
    let region: String
    let store: RegionStore
    let monitor: ReplicationMonitor
    let watcher: LogWatcher
    let redis: String?
    let logic: [String]
    let timeout: Duration
    let logger: Logger

    func run() async -> RegionHealthReport {
        async let postgres = outcome { [store, logger] in
            try await withDeadline(timeout, "postgres") {
                for try await _ in try await store.client.query("SELECT 1", logger: logger) {}
            }
        }
        async let redis = outcome { [redis, timeout] in
            guard let redis else { return }
            let answer = try await TCPProbe.exchange(redis, timeout: timeout, request: "PING\r\n", complete: { $0.contains("\r\n") })
            guard answer.hasPrefix("+PONG") else { throw ProbeError("redis \(redis) answered \(answer.prefix(40))") }
        }
        async let logic = outcome { [logic, timeout] in
            var failures: [String] = []
            for address in logic {
                do {
                    _ = try await TCPProbe.exchange(address, timeout: timeout)
                    return
                } catch {
                    failures.append("\(error)")
                }
            }
            throw ProbeError("no logic instance answers: \(failures.joined(separator: "; "))")
        }
        let status = monitor.status(local: watcher.current)
        return RegionHealthReport(
            region: region, checks: ["postgres": await postgres, "redis": await redis, "logic": await logic],
            maxLagSeconds: status.peers.values.map(\.lagSeconds).max() ?? 0,
            maxLagEvents: status.peers.values.map(\.lagEvents).max() ?? 0
        )
    }

    private func outcome(_ check: @escaping @Sendable () async throws -> Void) async -> String {
        do {
            try await check()
            return "ok"
        } catch {
            return "\(error)"
        }
    }
}
