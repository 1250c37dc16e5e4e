import Foundation
import ParleyCore
import ParleyDeployment
import ParleyProbe
import ParleyRPC
import ParleyWire
import ServiceLifecycle

/// Probes every region at a fixed interval and feeds the route table.
///
/// Whether a region can serve decides where clients go: it can when at least
/// one of its gates accepts a TCP connection and answers `GET /health` with
/// 200 (its Redis and a logic instance with working PostgreSQL and Redis),
/// within the probe timeout. Every gate is probed; answers list only the gates
/// that passed. Whether it can replicate (its sync's `GET /health`, and the lag
/// within `maxLagSeconds` when the cluster file sets it) is recorded and shown,
/// but moves no client: a region without its sync still serves its users
/// (docs/OPERATIONS.md, "Health and failover control").
struct RegionProber: Service {
    let table: RouteTable
    let settings: ClusterFile.RouteSettings
    /// The gates' health answers come over HTTPS when their listeners are TLS.
    let gateTLS: ClientTLS?

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            await withDiscardingTaskGroup { group in
                for region in table.regions {
                    group.addTask {
                        async let serving = probeGates(of: region)
                        async let replication = probeReplication(of: region)
                        table.record(region.name, serving: await serving, replication: await replication)
                    }
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(settings.probeIntervalMs)) }
        }
    }

    private var timeout: Duration { .milliseconds(settings.probeTimeoutMs) }

    /// Every gate of the region, probed at once. The region is ok when a
    /// gate is; slow when none is but one was reached and answered late
    /// (`RegionHealth`: slow is not gone); its answers list the ok gates, or
    /// the slow ones when no gate is ok.
    private func probeGates(of region: RegionFile) async -> RouteTable.ServingProbe {
        guard !region.gates.isEmpty else { return .init(healthyGates: [], error: "no gate in the region file", outcome: .failed) }
        let probes = await withTaskGroup(of: (Int, RegionHealth.Probe, String?).self) { group in
            for (index, gate) in region.gates.enumerated() {
                group.addTask {
                    let (outcome, problem) = await probe(gate)
                    return (index, outcome, problem)
                }
            }
            return await group.reduce(into: [Int: (RegionHealth.Probe, String?)]()) { $0[$1.0] = ($1.1, $1.2) }
        }
        let ok = region.gates.indices.filter { probes[$0]?.0 == .ok }
        let slow = region.gates.indices.filter { probes[$0]?.0 == .slow }
        let report = probes.filter { $0.value.1 != nil }.sorted { $0.key < $1.key }
            .map { "gate \(region.gates[$0.key].tcp): \($0.value.1!)" }.joined(separator: "; ")
        if !ok.isEmpty { return .init(healthyGates: ok, error: nil, outcome: .ok) }
        if !slow.isEmpty { return .init(healthyGates: slow, error: report, outcome: .slow) }
        return .init(healthyGates: [], error: report, outcome: .failed)
    }

    /// What one gate's probe found, and what was wrong. Its health answer
    /// first: no connection to it is a failure (a region cut off or gone); a
    /// connection answered late is slow. Then its client port, which a
    /// reconnect storm can keep from taking a connection in time while the
    /// gate answers its health: that is slow too, a refusal is a failure.
    private func probe(_ gate: RegionFile.Gate) async -> (RegionHealth.Probe, String?) {
        let report: GateHealthReport?
        do {
            let (code, body) = try await TCPProbe.httpGet(gate.webSocket, path: "/health", tls: gateTLS, timeout: timeout)
            report = try? JSONDecoder().decode(GateHealthReport.self, from: Data(body.utf8))
            guard code == 200 else {
                return (.failed, "health \(code): \(report.map { Self.notOK($0.checks) } ?? String(body.prefix(80)))")
            }
        } catch let error as PeerError where error.kind == .timedOut {
            return (.slow, "\(error)")
        } catch {
            return (.failed, "\(error)")
        }
        do {
            try await TCPProbe.exchange(gate.tcp, timeout: timeout)
        } catch let error as PeerError where error.kind == .timedOut || error.kind == .noConnection {
            return (.slow, "\(error)")
        } catch {
            return (.failed, "\(error)")
        }
        if let report, report.slow { return (.slow, "health: \(Self.notOK(report.checks))") }
        return (.ok, nil)
    }

    /// The region's sync: nil when the region file names no status listener.
    private func probeReplication(of region: RegionFile) async -> RouteTable.ReplicationProbe? {
        guard let status = region.syncStatus else { return nil }
        do {
            let (code, body) = try await TCPProbe.httpGet(status, path: "/health", timeout: timeout)
            let report = try? JSONDecoder().decode(RegionHealthReport.self, from: Data(body.utf8))
            guard code == 200 else {
                return .init(error: "sync health \(code): \(report.map { Self.notOK($0.checks) } ?? String(body.prefix(80)))", maxLagSeconds: report?.maxLagSeconds)
            }
            if let limit = settings.maxLagSeconds, let lag = report?.maxLagSeconds, lag > limit {
                return .init(error: "replication lag \(lag) s over \(limit) s", maxLagSeconds: lag)
            }
            return .init(error: nil, maxLagSeconds: report?.maxLagSeconds)
        } catch {
            return .init(error: "sync: \(error)", maxLagSeconds: nil)
        }
    }

    /// A health report's checks that are not "ok", for the route's log and status.
    private static func notOK(_ checks: [String: String]) -> String {
        checks.filter { $0.value != "ok" }.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")
    }
}
