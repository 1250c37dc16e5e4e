import ParleyCore
import ParleyDeployment
import ParleyDrill
import ParleyProto
import ParleyTestSupport
import Synchronization
import Testing

/// eu's PostgreSQL really under Patroni (a primary and a synchronous standby,
/// three etcd members, HAProxy in front), us a single server; route in both.
/// The drills' simulated clients write under load while eu's database fails
/// over inside the region (docs/DEPLOYMENT.md, "How the pieces fail").
@Suite(.serialized, .timeLimit(.minutes(5))) struct HighAvailabilityTests {
    /// route's settings of regions/cluster.json: what an operator runs. A
    /// pause is not an outage only if the region answers its probes in time
    /// while its database fails over.
    private static let route = ClusterFile.RouteSettings(probeIntervalMs: 500, probeTimeoutMs: 400, downAfter: 3, upAfter: 2)

    private func options(_ scenario: Drill.Scenario) -> Drill.Options {
        var options = Drill.Options(scenario: scenario, region: "eu")
        options.clients = 6
        // Local durability: an acknowledgement rests on eu's primary and its
        // synchronous standby alone, which is what a failover must keep.
        options.durability = .local
        options.loadBefore = .seconds(2)
        // Past Patroni's promotion (leader key TTL 6 s): the heal restarts the
        // dead node only once the standby has taken over.
        options.outage = .seconds(12)
        options.loadAfter = .seconds(2)
        return options
    }

    private func withCluster(_ body: (LocalCluster, HighlyAvailablePostgres) async throws -> Void) async throws {
        try await LocalCluster.with(["eu", "us"], route: Self.route, highAvailability: ["eu"]) { cluster in
            let pair = try #require(cluster["eu"].postgres as? HighlyAvailablePostgres)
            try await body(cluster, pair)
        }
    }

    @Test func theKilledPrimarysStandbyIsPromotedWithin10sAndNothingAcknowledgedIsLostOrShownTwice() async throws {
        try await withCluster { cluster, pair in
            let before = try #require(try pair.leader())
            let faults = FailoverFaults(cluster: cluster, pair: pair)
            let report = try await Drill(options: options(.killPostgres), cluster: faults).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
            #expect(report.highlyAvailable && report.expectedRouteState == nil)
            #expect(report.stayedUp == true, "eu was never evacuated: \(report.text)")
            #expect(report.connectionsLost == 0, "its clients stayed on their connections: \(report.text)")
            #expect(report.acked >= 20, "the load really ran: \(report.text)")
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0, "\(report.text)")
            let promotion = try #require(faults.promotion.withLock { $0 }, "the standby was never promoted")
            print("ha: the standby took writes \(promotion) after the primary's kill")
            #expect(promotion < .seconds(10), "promoted \(promotion) after the kill")
            let after = try pair.leader()
            #expect(after != nil && after != before, "the standby leads now: \(before) → \(after ?? "none")")
            // The killed node came back as the new primary's synchronous standby.
            #expect(try await eventually(.seconds(60)) { try pair.status().members.contains { $0.name == before && $0.role == "sync_standby" } })
        }
    }

    @Test func aPlannedSwitchoverUnderLoadDisconnectsNobodyAndLosesNothing() async throws {
        try await withCluster { cluster, pair in
            let before = try #require(try pair.leader())
            var options = options(.switchover)
            options.outage = .seconds(6)
            let report = try await Drill(options: options, cluster: FailoverFaults(cluster: cluster, pair: pair)).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
            #expect(report.stayedUp == true && report.connectionsLost == 0, "\(report.text)")
            #expect(report.acked >= 20 && report.ackedLost == 0 && report.duplicatesShown == 0, "\(report.text)")
            #expect(try pair.leader() != before)
        }
    }

    @Test func losingOneEtcdMemberMovesNothing() async throws {
        try await withCluster { cluster, pair in
            let before = try #require(try pair.leader())
            var options = options(.killEtcdMember)
            options.outage = .seconds(5)
            let report = try await Drill(options: options, cluster: FailoverFaults(cluster: cluster, pair: pair)).run(log: { print("drill: \($0)") })
            #expect(report.passed, "\(report.text)\n\(cluster.syncLogs)")
            #expect(report.stayedUp == true && report.connectionsLost == 0, "\(report.text)")
            #expect(report.ackedLost == 0 && report.duplicatesShown == 0, "\(report.text)")
            #expect(try pair.leader() == before, "two of three members keep the quorum: the primary keeps its lease")
        }
    }
}

/// The drill's faults on eu's Patroni pair; times the promotion after a kill.
private final class FailoverFaults: DrillCluster {
    let cluster: LocalCluster
    let pair: HighlyAvailablePostgres
    /// Kill → the other node leads and HAProxy reaches it, taking writes.
    let promotion = Mutex<Duration?>(nil)
    private let watcher = Mutex<Task<Void, Never>?>(nil)

    init(cluster: LocalCluster, pair: HighlyAvailablePostgres) {
        self.cluster = cluster
        self.pair = pair
    }

    var regionsDirectory: String { cluster.regions[0].directory }

    func isHighlyAvailable(region: String) -> Bool { region == "eu" }

    func killPostgres(region: String) async throws {
        let killed = try pair.leader()
        let at = ContinuousClock.now
        try pair.killLeader()
        let watching = Task { await self.watchPromotion(replacing: killed, since: at) }
        watcher.withLock { $0 = watching }
    }

    private func watchPromotion(replacing killed: String?, since at: ContinuousClock.Instant) async {
        while !Task.isCancelled, ContinuousClock.now - at < .seconds(30) {
            if let status = try? pair.status(), status.writable,
               status.members.contains(where: { $0.role == "leader" && $0.state == "running" && $0.name != killed }) {
                promotion.withLock { $0 = ContinuousClock.now - at }
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    func switchover(region: String) async throws { try pair.switchover() }

    func killEtcdMember(region: String) async throws { try pair.killEtcdMember(0) }

    func kill(region: String) async throws { throw TestSupportError("not in these tests") }
    func partition(region: String) async throws { throw TestSupportError("not in these tests") }
    func slowLinks(region: String, delay: Duration) async throws { throw TestSupportError("not in these tests") }

    func heal(region: String) async throws {
        await watcher.withLock { $0 }?.value
        try pair.heal()
    }
}
