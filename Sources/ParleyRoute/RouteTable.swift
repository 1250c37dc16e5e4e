import Logging
import ParleyCore
import ParleyDeployment
import ParleyProbe
import Synchronization

/// Every region's health as this route instance sees it, and which are
/// drained: what `GET /route` ranks and `GET /status` shows.
public final class RouteTable: Sendable {
    /// One probe of a region's gates: which passed, and what failed when none did.
    struct ServingProbe: Sendable {
        var healthyGates: [Int]
        /// What was wrong, for a slow probe too.
        var error: String?
        var outcome: RegionHealth.Probe = .ok
    }

    /// One probe of a region's sync.
    struct ReplicationProbe: Sendable {
        var error: String?
        var maxLagSeconds: Double?
    }

    public struct RegionStatus: Codable, Sendable {
        /// Whether the region can serve its users (its gates' health, with
        /// hysteresis): the only state that moves clients.
        public var state: RegionHealth.State
        public var draining: Bool
        public var failuresInARow: Int
        public var successesInARow: Int
        /// Times this region was declared down, and up again, since start.
        public var wentDown: Int
        public var cameUp: Int
        public var probes: Int
        public var probesFailed: Int
        /// The probe (counted in `probes`) that made the last state change.
        public var lastChangeAtProbe: Int?
        public var lastProbeError: String?
        /// The gates (tcp addresses) that passed the last probe.
        public var servingGates: [String]
        /// Whether the region's sync answered healthy at the last probe (nil:
        /// no status listener in its region file); shown, never acted on.
        public var replicating: Bool?
        public var replicationError: String?
        public var maxLagSeconds: Double?
    }

    private struct Entry {
        var health: RegionHealth
        var draining = false
        var wentDown = 0
        var cameUp = 0
        var probes = 0
        var probesFailed = 0
        var lastChangeAtProbe: Int?
        var lastProbeError: String?
        var healthyGates: [Int] = []
        var replication: ReplicationProbe?
    }

    let regions: [RegionFile]
    /// Whether the gates speak TLS: the answers' URLs and `tls` say so.
    let security: LinkSecurity
    private let entries: Mutex<[String: Entry]>
    private let logger: Logger

    public init(regions: [RegionFile], settings: ClusterFile.RouteSettings, security: LinkSecurity, logger: Logger) {
        self.regions = regions
        self.security = security
        self.logger = logger
        entries = Mutex(Dictionary(uniqueKeysWithValues: regions.map {
            ($0.name, Entry(health: RegionHealth(downAfter: settings.downAfter, upAfter: settings.upAfter, slowDownAfter: settings.slowDownAfter)))
        }))
    }

    /// Records one probe of `region`; a state change is logged and counted.
    func record(_ region: String, serving: ServingProbe, replication: ReplicationProbe?) {
        let error = serving.error
        let change = entries.withLock { entries -> RegionHealth.State? in
            entries[region]?.lastProbeError = error
            entries[region]?.healthyGates = serving.healthyGates
            entries[region]?.replication = replication
            entries[region]?.probes += 1
            if serving.outcome == .failed { entries[region]?.probesFailed += 1 }
            let change = entries[region]?.health.record(serving.outcome)
            if change == .down { entries[region]?.wentDown += 1 }
            if change == .up { entries[region]?.cameUp += 1 }
            if change != nil, let probes = entries[region]?.probes { entries[region]?.lastChangeAtProbe = probes }
            return change
        }
        if let change {
            logger.notice("region \(change == .down ? "down" : "up")", metadata: ["region": "\(region)", "lastError": "\(error ?? "none")"])
        }
    }

    /// Drains (or undrains) a region: it leaves (or rejoins) every answer.
    public func setDraining(_ region: String, _ draining: Bool) -> Bool {
        let known = entries.withLock { entries -> Bool in
            guard entries[region] != nil else { return false }
            entries[region]?.draining = draining
            return true
        }
        if known { logger.notice(draining ? "region draining" : "region undrained", metadata: ["region": "\(region)"]) }
        return known
    }

    public var status: [String: RegionStatus] {
        let gates = Dictionary(uniqueKeysWithValues: regions.map { ($0.name, $0.gates) })
        return entries.withLock { entries in
            entries.map { name, entry in
                (name, RegionStatus(
                    state: entry.health.state, draining: entry.draining, failuresInARow: entry.health.failuresInARow,
                    successesInARow: entry.health.successesInARow, wentDown: entry.wentDown, cameUp: entry.cameUp,
                    probes: entry.probes, probesFailed: entry.probesFailed, lastChangeAtProbe: entry.lastChangeAtProbe,
                    lastProbeError: entry.lastProbeError,
                    servingGates: entry.healthyGates.compactMap { gates[name]?[$0].tcp },
                    replicating: entry.replication.map { $0.error == nil }, replicationError: entry.replication?.error,
                    maxLagSeconds: entry.replication?.maxLagSeconds
                ))
            }.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    /// `GET /metrics`: every region's state and its changes, in Prometheus text format.
    public var prometheus: String {
        let status = self.status.sorted { $0.key < $1.key }
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ value: (RegionStatus) -> Int) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (region, entry) in status { lines.append("\(name){region=\"\(region)\"} \(value(entry))") }
        }
        family("parley_route_region_up", "gauge", "1 when the region passes its probes (hysteresis applied).") { $0.state == .up ? 1 : 0 }
        family("parley_route_region_replicating", "gauge", "1 when the region's sync answers healthy (shown, never acted on).") {
            $0.replicating == false ? 0 : 1
        }
        family("parley_route_region_draining", "gauge", "1 while an operator drains the region.") { $0.draining ? 1 : 0 }
        family("parley_route_region_down_total", "counter", "Times the region was declared down.") { $0.wentDown }
        family("parley_route_region_up_total", "counter", "Times the region was declared up again.") { $0.cameUp }
        family("parley_route_probes_total", "counter", "Health probes sent to the region.") { $0.probes }
        family("parley_route_probes_failed_total", "counter", "Health probes the region failed.") { $0.probesFailed }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The regions for a client, nearest healthy first, each with the gates
    /// that passed the last probe (all of them while none has).
    public func answer(for client: RouteRanking.Client) -> [RouteAnswer] {
        let status = self.status
        let candidates = regions.map { region in
            RouteRanking.Candidate(
                name: region.name, location: region.location, clientNetworks: region.clientNetworks.compactMap(IPv4Network.init),
                available: status[region.name].map { $0.state == .up && !$0.draining } ?? false
            )
        }
        return RouteRanking.rank(candidates, for: client).compactMap { name in
            regions.first { $0.name == name }.map { region in
                let serving = status[name]?.servingGates ?? []
                let gates = serving.isEmpty ? region.gates : region.gates.filter { serving.contains($0.tcp) }
                return RouteAnswer(region: name, gates: gates.map {
                    .init(tcp: $0.tcp, tls: security.isTLS, webSocket: security.webSocketURL($0), longPoll: security.longPollURL($0))
                })
            }
        }
    }
}

/// One region in a route answer, with where its clients connect.
public struct RouteAnswer: Codable, Sendable, Equatable {
    public struct Gate: Codable, Sendable, Equatable {
        public var tcp: String
        /// Whether `tcp` speaks TLS.
        public var tls: Bool
        public var webSocket: String
        public var longPoll: String
    }

    public var region: String
    public var gates: [Gate]
}
