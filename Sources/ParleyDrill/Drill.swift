import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyAuth
import ParleyCheck
import ParleyClient
import ParleyCore
import ParleyDeployment
import ParleyProto
import ParleyRoute
import Synchronization

/// What a drill does to the cluster it runs against.
public protocol DrillCluster: Sendable {
    /// The folder with cluster.json and the region files: routes, gates, sync status.
    var regionsDirectory: String { get }
    /// SIGKILL to every process of the region at once, Postgres and Redis included.
    func kill(region: String) async throws
    /// SIGKILL to the region's PostgreSQL (postmaster and backends) alone;
    /// under Patroni, to the primary's Patroni and PostgreSQL (its machine died).
    func killPostgres(region: String) async throws
    /// Whether the region's PostgreSQL is a Patroni pair (primary and
    /// synchronous standby) that fails over inside the region.
    func isHighlyAvailable(region: String) -> Bool
    /// A planned Patroni switchover to the synchronous standby.
    func switchover(region: String) async throws
    /// SIGKILL to one member of the region's etcd cluster.
    func killEtcdMember(region: String) async throws
    /// Cuts the region off from clients, probes and the other regions: every
    /// packet to its gates, route and sync dropped (`Drill.partitionPorts`),
    /// every link between it and the others blackholed.
    func partition(region: String) async throws
    /// Adds `delay` each way on every link between the region and the others.
    func slowLinks(region: String, delay: Duration) async throws
    /// Undoes the fault: restarts what was killed on its data, lifts the
    /// partition, restores the links.
    func heal(region: String) async throws
}

/// `parley drill`: takes a region down under load from simulated clients
/// that fail over through `parley route`, heals it, and reports detection,
/// client recovery, acknowledged messages lost, duplicates and convergence
/// (docs/OPERATIONS.md, "Drills").
public struct Drill: Sendable {
    public enum Scenario: String, Sendable, Codable, CaseIterable {
        /// Every process of the region SIGKILLed, then restarted on its data.
        case killRegion = "kill-region"
        /// The region's PostgreSQL SIGKILLed. A single server: its gates still
        /// run, its health fails, route declares it down and its gates send
        /// clients elsewhere. Under Patroni: the primary's machine dies, the
        /// synchronous standby is promoted, the region stays up and its
        /// clients stay connected through the pause.
        case killPostgres = "kill-postgres"
        /// A planned Patroni switchover: the standby becomes primary; nobody
        /// is disconnected (Patroni regions only).
        case switchover
        /// One of the region's three etcd members SIGKILLed: the other two keep
        /// the quorum, nothing moves (Patroni regions only).
        case killEtcdMember = "kill-etcd-member"
        /// `parley route drain`: clients move away over the drain window; undrained at heal.
        case drain
        /// The region cut off from its clients, route's probes and the other
        /// regions; its processes keep running. Healed, it catches up both ways.
        case partition
        /// 250 ms added each way between the region and the others: nobody
        /// fails over, geo-durable sends wait longer, nothing is lost.
        case slowLink = "slow-link"

        /// What route must come to say of the region (nil: that it stays up).
        func routeState(highlyAvailable: Bool) -> String? {
            switch self {
            case .killRegion, .partition: "down"
            case .killPostgres: highlyAvailable ? nil : "down"
            case .drain: "draining"
            case .slowLink, .switchover, .killEtcdMember: nil
            }
        }

        /// Whether the fault must leave every client on its connection: a
        /// fault the region rides out inside itself.
        func keepsConnections(highlyAvailable: Bool) -> Bool {
            switch self {
            case .switchover, .killEtcdMember: true
            case .killPostgres: highlyAvailable
            case .killRegion, .partition, .drain, .slowLink: false
            }
        }

        /// Faults only a Patroni region has.
        var needsHighAvailability: Bool { self == .switchover || self == .killEtcdMember }
    }

    /// The ports a partition drops: the region's gates, route and sync.
    public static func partitionPorts(of region: RegionFile) -> [Int] {
        let addresses = region.gates.flatMap { [$0.tcp, $0.webSocket] } + [region.route, region.sync, region.syncStatus].compactMap { $0 }
        return addresses.compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
    }

    public struct Options: Sendable {
        public var scenario: Scenario
        /// The region the fault hits.
        public var region: String
        /// Simulated users, spread over the regions; each writes to the next one.
        public var clients = 12
        public var sendsPerSecondPerClient = 2.0
        public var durability: Parley_Durability = .geo
        /// Load before the fault.
        public var loadBefore: Duration = .seconds(3)
        /// The fault lasts at least this long, and until every affected client recovered.
        public var outage: Duration = .seconds(4)
        /// Load after the heal, before the convergence is measured.
        public var loadAfter: Duration = .seconds(2)
        /// Give up on recovery, detection or convergence after this long.
        public var limit: Duration = .seconds(60)
        /// How long a client's connection may stay silent before it moves on.
        public var clientLiveness: Duration = .seconds(2)

        public init(scenario: Scenario, region: String) {
            self.scenario = scenario
            self.region = region
        }
    }

    public let options: Options
    public let cluster: any DrillCluster

    public init(options: Options, cluster: any DrillCluster) {
        self.options = options
        self.cluster = cluster
    }

    public func run(log: @Sendable (String) -> Void = { _ in }) async throws -> DrillReport {
        let topology = try Topology(directory: cluster.regionsDirectory)
        guard topology.regions.contains(where: { $0.name == options.region }) else {
            throw DrillError("no region \(options.region) in \(cluster.regionsDirectory)")
        }
        let highlyAvailable = cluster.isHighlyAvailable(region: options.region)
        if options.scenario.needsHighAvailability, !highlyAvailable {
            throw DrillError("\(options.scenario.rawValue) needs region \(options.region)'s PostgreSQL under Patroni (PARLEY_HA, docs/DEPLOYMENT.md)")
        }
        let expectedState = options.scenario.routeState(highlyAvailable: highlyAvailable)
        let keepsConnections = options.scenario.keepsConnections(highlyAvailable: highlyAvailable)
        let survivors = topology.regions.filter { $0.name != options.region }
        guard let observer = survivors.first(where: { $0.route != nil }) else {
            throw DrillError("a drill needs `parley route` in a region other than \(options.region) (route in the region files)")
        }
        // A region still starting would send its clients elsewhere and skew
        // who the fault affects: start from a cluster route sees whole.
        for instance in topology.regions where instance.route != nil {
            guard await Self.waitUntilEveryRegionIsUp(seenBy: instance, topology, limit: options.limit) else {
                throw DrillError("route \(instance.name) does not see every region up: \(await Self.routeStates(instance) ?? [:])")
            }
        }
        let recorder = DrillRecorder()
        let users = try await connectUsers(topology, recorder: recorder, log: log)
        log("\(users.count) clients connected; introducing partners")
        try await introduce(users, recorder: recorder)

        let load = DrillLoad(users: users, recorder: recorder, interval: .seconds(1 / options.sendsPerSecondPerClient), durability: options.durability)
        let loadTask = Task { await load.run() }
        try await Task.sleep(for: options.loadBefore)

        // The premise: the clients homed in the region are there when the
        // fault hits. One that moved away before it (a connection lost under
        // load) is sent home, and a drill with nobody there cannot run.
        var movedBefore = 0
        for user in users { movedBefore += await user.client.recoveries.count }
        try await bringHome(users.filter { $0.home == options.region }, log: log)
        var affected: [SimulatedUser] = []
        var where_: [String: Int] = [:]
        for user in users {
            let region = await user.client.region
            if region == options.region { affected.append(user) }
            where_[region ?? "none", default: 0] += 1
        }
        guard !affected.isEmpty else {
            throw DrillError("no client is connected to \(options.region) before the fault (clients by region: \(where_)): the drill would prove nothing")
        }
        log("fault: \(options.scenario.rawValue) \(options.region) (clients by region: \(where_.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \(movedBefore) reconnects before the fault)")
        let faultAt = ContinuousClock.now
        try await inject(topology)

        var detection: Duration?
        var stayedUp: Bool?
        var connectionsLost: Int?
        if let state = expectedState {
            detection = await Self.poll(limit: options.limit) { await Self.routeSays(observer, options.region, is: state) }.map { $0 - faultAt }
            log("route: \(options.region) \(detection.map { "\(state) after \(seconds($0)) s" } ?? "never \(state)")")
        } else {
            // Slow is not down, nor a failover inside the region: route must
            // say "up" all along, and every client stays where it was.
            var up = true
            let outageEnds = ContinuousClock.now + options.outage
            while ContinuousClock.now < outageEnds {
                if !(await Self.routeSays(observer, options.region, is: "up")) { up = false }
                try await Task.sleep(for: .milliseconds(200))
            }
            stayedUp = up
            if keepsConnections {
                var lost: [String] = []
                for user in affected {
                    lost += await user.client.recoveries.filter { $0.at > faultAt }.map { "\(user.name) after \(seconds($0.at - faultAt)) s: \($0.reason)" }
                }
                connectionsLost = lost.count
                if !lost.isEmpty { log("connections lost: \(lost.joined(separator: "; "))") }
            }
            affected = []
            log("route: \(options.region) \(up ? "up all along" : "NOT up all along")\(connectionsLost.map { "; \($0) client connections lost" } ?? "")")
        }
        var recoveries: [Duration] = []
        var reasons: Set<String> = []
        let recovered = await Self.poll(limit: options.limit) {
            recoveries = []
            for user in affected {
                guard let back = await user.client.recoveries.last(where: { $0.at > faultAt && $0.to != options.region }) else { return false }
                recoveries.append(back.at - faultAt)
                reasons.insert(back.reason)
            }
            return true
        }
        log("clients: \(recoveries.count) of \(affected.count) recovered elsewhere (lost their connection: \(reasons.sorted().joined(separator: "; ")))")
        // Events of the failed region that no other region holds: with local
        // durability acknowledged ones among them are at risk until the heal.
        // A drained or slowed region is not failed: nothing of it is at risk.
        var heldElsewhere = UInt64.max
        let failed = expectedState == "down"
        if failed { heldElsewhere = try await held(elsewhere: survivors, adminToken: topology.adminToken) }
        if let recovered { try await Task.sleep(until: max(recovered, faultAt + options.outage)) }
        // Asked again at the end of the outage: a `geo` send acknowledged
        // during it was confirmed by a survivor, which must hold it by now.
        if failed { heldElsewhere = max(heldElsewhere, try await held(elsewhere: survivors, adminToken: topology.adminToken)) }

        log("heal: \(options.region)")
        let restartAt = ContinuousClock.now
        // What is acknowledged from now on was confirmed once the region was
        // back (a send retried after the heal): not at risk in the fault.
        recorder.closeFaultWindow()
        try await heal(topology)
        // Convergence counts from the moment the region runs again.
        let healAt = ContinuousClock.now
        log("heal: \(options.region) running again after \(seconds(healAt - restartAt)) s")
        try await Task.sleep(for: options.loadAfter)
        load.stop()
        await loadTask.value
        log("load stopped; waiting for the regions to converge")

        let sources = topology.regions.map { HTTPRegionDigests(name: $0.name, address: $0.syncStatus ?? "", adminToken: topology.adminToken) }
        var lastCheck: ConsistencyReport?
        let converged = await Self.poll(limit: options.limit, every: .milliseconds(250)) {
            let report = await ConsistencyCheck.run(sources)
            lastCheck = report
            return report.converged
        }
        log("checker: \(lastCheck?.verdict.rawValue ?? "not run")\(converged.map { ", converged \(seconds($0 - healAt)) s after heal" } ?? "")")

        // Every client pulls what it may have missed, then every acknowledged
        // message must have reached its recipient exactly once.
        for user in users { try? await user.client.sync() }
        _ = await Self.poll(limit: .seconds(10)) { recorder.missing().isEmpty }
        for user in users { await user.client.disconnect() }

        let tally = recorder.tally(killedRegion: options.region, heldElsewhere: heldElsewhere)
        return DrillReport(
            scenario: options.scenario.rawValue, region: options.region,
            durability: options.durability == .local ? "local" : options.durability == .geo ? "geo" : "region default",
            clients: users.count, highlyAvailable: highlyAvailable, expectedRouteState: expectedState,
            detectionSeconds: detection.map(seconds), stayedUp: stayedUp, connectionsLost: connectionsLost, healSeconds: seconds(healAt - restartAt),
            clientsAffected: affected.count, clientsRecovered: recovered == nil ? recoveries.count : affected.count, reconnectsBeforeFault: movedBefore,
            recovery: DrillReport.Percentiles(recoveries.map(seconds)),
            acked: tally.acked, sendErrors: tally.errors, ackedLost: tally.lost, atRisk: tally.atRisk,
            atRiskReappeared: tally.atRiskReappeared, duplicatesShown: tally.duplicatesShown, storedTwice: tally.storedTwice,
            convergenceSeconds: converged.map { seconds($0 - healAt) }, checkVerdict: lastCheck?.verdict.rawValue ?? "not run",
            checkSummary: lastCheck.map { "\($0.summary); applied \($0.applied.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " | "))" } ?? ""
        )
    }

    /// The highest event of the failed region that any survivor holds. Every
    /// survivor must answer: one left out (a slow answer on a loaded machine)
    /// would hide the events only it holds.
    private func held(elsewhere survivors: [RegionFile], adminToken: String) async throws -> UInt64 {
        var highest: UInt64 = 0
        for survivor in survivors {
            let source = HTTPRegionDigests(name: survivor.name, address: survivor.syncStatus ?? "", adminToken: adminToken)
            var held: UInt64?
            _ = await Self.poll(limit: .seconds(30), every: .milliseconds(200)) {
                guard let status = try? await source.status() else { return false }
                held = status.applied[options.region] ?? 0
                return true
            }
            guard let held else { throw DrillError("\(survivor.name)'s sync did not say what it holds of \(options.region)") }
            highest = max(highest, held)
        }
        return highest
    }

    // MARK: - Faults

    private func inject(_ topology: Topology) async throws {
        switch options.scenario {
        case .killRegion: try await cluster.kill(region: options.region)
        case .killPostgres: try await cluster.killPostgres(region: options.region)
        case .drain: try await Self.setDraining(options.region, true, topology)
        case .partition: try await cluster.partition(region: options.region)
        case .slowLink: try await cluster.slowLinks(region: options.region, delay: .milliseconds(250))
        case .switchover: try await cluster.switchover(region: options.region)
        case .killEtcdMember: try await cluster.killEtcdMember(region: options.region)
        }
    }

    private func heal(_ topology: Topology) async throws {
        switch options.scenario {
        case .killRegion, .killPostgres, .partition, .slowLink, .switchover, .killEtcdMember: try await cluster.heal(region: options.region)
        case .drain:
            try await Self.setDraining(options.region, false, topology)
            // Healed once every route instance has it back.
            for instance in topology.regions where instance.route != nil {
                _ = await Self.waitUntilEveryRegionIsUp(seenBy: instance, topology, limit: options.limit)
            }
        }
    }

    /// What `parley route drain` does: tells every route instance.
    private static func setDraining(_ region: String, _ draining: Bool, _ topology: Topology) async throws {
        for instance in topology.regions {
            guard let route = instance.route else { continue }
            do {
                try await RouteAdmin(address: route, adminToken: topology.adminToken).setDraining(region, draining)
            } catch {
                throw DrillError("route \(instance.name) at \(route) did not take the \(draining ? "drain" : "undrain") of \(region): \(error)")
            }
        }
    }

    // MARK: - Clients

    private func connectUsers(_ topology: Topology, recorder: DrillRecorder, log: @Sendable (String) -> Void) async throws -> [SimulatedUser] {
        let authority = try await TokenAuthority(secret: topology.tokenSecret)
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let names = (0..<options.clients).map { "drill\(run)_\($0)" }
        var users: [SimulatedUser] = []
        for (index, name) in names.enumerated() {
            let home = topology.regions[index % topology.regions.count]
            var configuration = ParleyClient.Configuration(
                gates: topology.gates(homeFirst: home.name), routes: topology.regions.compactMap(\.route),
                token: try await authority.issue(userID: name, lifetime: 3_600), deviceID: "drill"
            )
            configuration.regionHint = home.name
            configuration.certificateAuthority = topology.security.certificates?.authority
            configuration.livenessTimeout = options.clientLiveness
            configuration.requestTimeout = .seconds(5)
            let client = ParleyClient(configuration: configuration)
            // A gate takes devices again one watch interval after its route
            // sees the region up: a sign-in just before that is refused.
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                do {
                    try await client.connect()
                    break
                } catch where ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            if let region = await client.region, region != home.name { log("\(name) homed in \(home.name) connected to \(region)") }
            let user = SimulatedUser(name: name, partner: names[(index + 1) % names.count], home: home.name, client: client)
            Task { await user.receive(recorder) }
            users.append(user)
        }
        return users
    }

    /// Reconnects each user that is not in its home region until it is there.
    private func bringHome(_ users: [SimulatedUser], log: @Sendable (String) -> Void) async throws {
        for user in users {
            let deadline = ContinuousClock.now + options.limit
            while await user.client.region != user.home {
                guard ContinuousClock.now < deadline else {
                    throw DrillError("\(user.name) cannot get back to its home region \(user.home) before the fault")
                }
                log("\(user.name) is in \(await user.client.region ?? "no region"), not its home \(user.home): sending it home")
                do { try await user.client.rehome() } catch { try await Task.sleep(for: .milliseconds(200)) }
            }
        }
    }

    /// Each user's first message to its partner, retried until the partner's
    /// sign-in has replicated to the sender's region.
    private func introduce(_ users: [SimulatedUser], recorder: DrillRecorder) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask {
                    let deadline = ContinuousClock.now + .seconds(30)
                    let id = ParleyClient.newClientMsgID()
                    while true {
                        do {
                            let ack = try await user.client.send(to: .user(user.partner), body: "hello", clientMsgID: id)
                            return recorder.acked(user, id, ack)
                        } catch let error as ClientError where error.code == .unknownUser && ContinuousClock.now < deadline {
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    // MARK: - Observing

    private static func waitUntilEveryRegionIsUp(seenBy instance: RegionFile, _ topology: Topology, limit: Duration) async -> Bool {
        let names = topology.regions.map(\.name)
        return await poll(limit: limit) { await routeStates(instance).map { states in names.allSatisfy { states[$0] == "up" } } ?? false } != nil
    }

    private static func routeSays(_ observer: RegionFile, _ region: String, is state: String) async -> Bool {
        await routeStates(observer)?[region] == state
    }

    /// Each region's state as `observer`'s route sees it: "up", "down", or
    /// "draining" for an up region that is drained; nil when route did not answer.
    private static func routeStates(_ observer: RegionFile) async -> [String: String]? {
        guard let route = observer.route, let (status, _) = try? await RouteAdmin(address: route, timeout: .seconds(1)).status() else { return nil }
        return status.mapValues { $0.state == .up && $0.draining ? "draining" : $0.state.rawValue }
    }

    /// Polls `condition` until it holds (the instant it did) or `limit` passes (nil).
    private static func poll(
        limit: Duration, every interval: Duration = .milliseconds(50), _ condition: () async -> Bool
    ) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await condition() { return .now }
            try? await Task.sleep(for: interval)
        }
        return nil
    }
}

func seconds(_ duration: Duration) -> Double {
    let (whole, fraction) = duration.components
    return ((Double(whole) + Double(fraction) / 1e18) * 1_000).rounded() / 1_000
}

extension ConsistencyReport {
    /// Consistent with every region at the same vector and no conversation deferred.
    var converged: Bool {
        verdict == .consistent && Set(applied.values).count == 1 && conversationsDeferred == 0
    }
}

public struct DrillError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
