import ParleyCore
import ParleyDeployment
import ParleyDrill
import ParleyFault
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Synchronization
import Testing

/// `parley drill`'s runner against three regions really running, each with
/// its `parley route`; the simulated clients fail over through route.
@Suite(.serialized, .timeLimit(.minutes(4))) struct DrillTests {
    /// Fast probes: a killed region is declared down within ~0.6 s.
    private static let route = ClusterFile.RouteSettings(probeIntervalMs: 200, probeTimeoutMs: 200, downAfter: 3, upAfter: 2)

    private func options(_ durability: Parley_Durability, _ scenario: Drill.Scenario = .killRegion) -> Drill.Options {
        var options = Drill.Options(scenario: scenario, region: "eu")
        options.clients = 6
        options.durability = durability
        options.loadBefore = .seconds(2)
        options.outage = .seconds(3)
        options.loadAfter = .seconds(1)
        return options
    }

    @Test func killingARegionWithGeoDurabilityEveryClientRecoversElsewhereNothingLostNothingTwice() async throws {
        try await LocalCluster.with(route: Self.route) { cluster in
            let report = try await Drill(options: options(.geo), cluster: ClusterFaults(cluster: cluster)).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
            // Two of six clients are homed in eu; under load a client may lose
            // a connection before the fault and move (reconnectsBeforeFault).
            #expect(report.clientsAffected >= 1 && report.clientsRecovered == report.clientsAffected)
            #expect(report.recovery.count == report.clientsAffected && (report.recovery.max ?? 99) < 10)
            #expect(report.detectionSeconds.map { $0 < 5 } == true)
            #expect(report.acked >= 20, "the load really ran: \(report.acked) acked")
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0)
            #expect(report.atRisk == 0, "geo: every acknowledged event was held by another region")
            #expect(report.checkVerdict == "consistent" && report.convergenceSeconds != nil)
        }
    }

    /// eu's outbound replication stalls for 1.5 s before it dies: what eu
    /// acknowledged meanwhile with `local` durability was held by eu alone.
    @Test func killingARegionWithLocalDurabilityCountsWhatWasAtRiskAndAllOfItReappearsAfterHeal() async throws {
        try await LocalCluster.with(faultyLinks: true, route: Self.route) { cluster in
            let target = ClusterFaults(cluster: cluster, stallReplicationFirst: .milliseconds(1_500))
            let report = try await Drill(options: options(.local), cluster: target).run(log: { print("drill: \($0)") })
            #expect(report.atRisk > 0, "acknowledged while eu's replication stalled: \(report.text)")
            #expect(report.atRiskReappeared == report.atRisk, "\(report.text)")
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0, "\(report.text)")
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
        }
    }

    /// eu's gates outlive its PostgreSQL: its health fails, route declares it
    /// down, and the gates send their clients elsewhere.
    @Test func killingARegionsPostgresMovesItsClientsElsewhere() async throws {
        try await LocalCluster.with(route: Self.route) { cluster in
            let report = try await Drill(options: options(.geo, .killPostgres), cluster: ClusterFaults(cluster: cluster)).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
            #expect(report.clientsAffected >= 1 && report.clientsRecovered == report.clientsAffected)
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0 && report.atRisk == 0)
        }
    }

    /// A drain moves eu's clients over the drain window (1 s here); undrained, eu takes clients again.
    @Test func drainingARegionMovesItsClientsOverTheWindow() async throws {
        var settings = Self.route
        settings.drainWindowMs = 1_000
        try await LocalCluster.with(route: settings) { cluster in
            let report = try await Drill(options: options(.geo, .drain), cluster: ClusterFaults(cluster: cluster)).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)")
            #expect(report.clientsAffected >= 1 && report.clientsRecovered == report.clientsAffected)
            #expect((report.recovery.max ?? 99) < 5, "told within the 1 s window, back within a second more: \(report.text)")
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0 && report.sendErrors == 0, "a drain loses nothing: \(report.text)")
        }
    }

    /// eu cut off from clients, probes and peers while its processes run:
    /// its clients hear nothing, move on, and after the heal both sides catch up.
    @Test func partitioningARegionMovesItsClientsAndTheRegionsConvergeAfterHeal() async throws {
        try await LocalCluster.with(faultyLinks: true, route: Self.route) { cluster in
            let report = try await Drill(options: options(.geo, .partition), cluster: ClusterFaults(cluster: cluster)).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
            #expect(report.clientsAffected >= 1 && report.clientsRecovered == report.clientsAffected)
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0 && report.atRisk == 0, "\(report.text)")
        }
    }
}

/// The drill's faults on a test cluster; optionally eu's peers stop
/// receiving its events for a while before it dies.
private final class ClusterFaults: DrillCluster {
    let cluster: LocalCluster
    let stallReplicationFirst: Duration?
    private enum Fault { case killed, postgresKilled, partitioned(PortBlock), linksSlowed }
    private let fault = Mutex<Fault?>(nil)

    init(cluster: LocalCluster, stallReplicationFirst: Duration? = nil) {
        self.cluster = cluster
        self.stallReplicationFirst = stallReplicationFirst
    }

    var regionsDirectory: String { cluster.regions[0].directory }

    func kill(region: String) async throws {
        if let stall = stallReplicationFirst {
            setLinks(of: region, LinkFaults(state: .blackhole))
            try await Task.sleep(for: stall)
        }
        fault.withLock { $0 = .killed }
        await cluster[region].killAll()
    }

    func killPostgres(region: String) async throws {
        fault.withLock { $0 = .postgresKilled }
        if let pair = cluster[region].postgres as? HighlyAvailablePostgres {
            try pair.killLeader()
        } else {
            await cluster[region].postgres.kill9()
        }
    }

    func isHighlyAvailable(region: String) -> Bool { cluster[region].postgres is HighlyAvailablePostgres }

    func switchover(region: String) async throws { try pair(region).switchover() }

    func killEtcdMember(region: String) async throws {
        fault.withLock { $0 = .postgresKilled }
        try pair(region).killEtcdMember(0)
    }

    private func pair(_ region: String) throws -> HighlyAvailablePostgres {
        guard let pair = cluster[region].postgres as? HighlyAvailablePostgres else { throw TestSupportError("\(region) is not under Patroni") }
        return pair
    }

    func partition(region: String) async throws {
        setLinks(of: region, LinkFaults(state: .blackhole))
        let block = try PortBlock(ports: Drill.partitionPorts(of: cluster[region].file))
        fault.withLock { $0 = .partitioned(block) }
    }

    func slowLinks(region: String, delay: Duration) async throws {
        var faults = LinkFaults.healthy
        faults.delayMs = Int(delay.components.attoseconds / 1_000_000_000_000_000 + delay.components.seconds * 1_000)
        setLinks(of: region, faults)
        fault.withLock { $0 = .linksSlowed }
    }

    func heal(region: String) async throws {
        switch fault.withLock({ $0.take() }) {
        case .killed?:
            try await cluster[region].restartAll()
        case .postgresKilled?:
            // A Patroni pair starts what was killed; the node rejoins as standby.
            try await cluster[region].postgres.restart()
        case .partitioned(let block)?:
            try block.lift()
        case .linksSlowed?, nil:
            break
        }
        setLinks(of: region, .healthy)
    }

    /// Both ways between `region` and every other region (only with `faultyLinks`).
    private func setLinks(of region: String, _ faults: LinkFaults) {
        guard cluster.hasFaultyLinks else { return }
        for peer in cluster.regions where peer.name != region {
            cluster.link(from: peer.name, to: region).set(faults)
            cluster.link(from: region, to: peer.name).set(faults)
        }
    }
}
