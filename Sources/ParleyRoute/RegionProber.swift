import Foundation
import ParleyCore
import ParleyRPC
import ServiceLifecycle

/// Probes every region at a fixed interval and feeds the route table. A
/// region is healthy when its first gate accepts a TCP connection and its
/// `GET /health` (served by its sync: Postgres, Redis, logic) answers 200,
/// each within the probe timeout, and, when the cluster file sets
/// `maxLagSeconds`, its replication lag is within it.
struct RegionProber: Service {
    let table: RouteTable
    let settings: ClusterFile.RouteSettings

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            await withDiscardingTaskGroup { group in
                for region in table.regions {
                    group.addTask { table.record(region.name, error: await probe(region)) }
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(settings.probeIntervalMs)) }
        }
    }

    /// nil when healthy, else what failed.
    private func probe(_ region: RegionFile) async -> String? {
        guard let gate = region.gates.first else { return "no gate in the region file" }
        let timeout = Duration.milliseconds(settings.probeTimeoutMs)
        do {
            try await TCPProbe.exchange(gate.tcp, timeout: timeout)
            guard let status = region.syncStatus else { return nil }
            let (code, body) = try await TCPProbe.httpGet(status, path: "/health", timeout: timeout)
            let report = try? JSONDecoder().decode(RegionHealthReport.self, from: Data(body.utf8))
            guard code == 200 else {
                let failed = report?.checks.filter { $0.value != "ok" }.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")
                return "health \(code): \(failed ?? String(body.prefix(80)))"
            }
            if let limit = settings.maxLagSeconds, let lag = report?.maxLagSeconds, lag > limit {
                return "replication lag \(lag) s over \(limit) s"
            }
            return nil
        } catch {
            return "\(error)"
        }
    }
}
