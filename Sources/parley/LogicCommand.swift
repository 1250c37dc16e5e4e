import ArgumentParser
import ParleyCore
import ParleyDeployment
import ParleyLogic
import ParleyRPC

struct LogicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logic", abstract: "Run a logic instance: the region's core business behind the Logic RPC."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Address to serve the Logic RPC on; one of the region's `logic` entries.")
    var listen: String

    @Option(help: "Commands written per group-commit transaction, at most.")
    var maxBatch = 256

    @Option(help: "Largest message body accepted, in UTF-8 bytes.")
    var maxBodyBytes = 16 * 1024

    @Option(help: "Most members a group may have, the owner included (checked at creation and on every add).")
    var maxGroupMembers = 1_000

    @Option(help: "How long after sending a message its sender may still recall it (milliseconds); a group's owner and admins recall at any time.")
    var recallWindowMs = 120_000

    @Option(help: "A typing notice that repeats the same state within this is refused with rate_limited (milliseconds).")
    var typingIntervalMs = 1_000

    @Option(help: "How long a device's first change or read after it moved here waits for this region to hold what it wrote or saw elsewhere (milliseconds).")
    var sessionWaitMs = 2_000

    @Option(help: "How long PostgreSQL may be unreachable before health fails and commits give up (seconds): set it above the failover time of a Patroni pair (ops/up does when PARLEY_HA is on); 0 for a single server.")
    var storeFailoverGrace = 0.0

    @Option(help: "Where this process serves GET /metrics (host:port); default: the region file's metrics entry. \"none\": not served.")
    var metrics: String?

    func run() async throws {
        let (region, cluster) = try deployment.load()
        let peers = try deployment.peers()
        let postgres = try deployment.postgres(of: region)
        var configuration = LogicConfiguration(
            region: region.name, listen: try Endpoint(listen), postgres: postgres,
            redis: Endpoint(host: region.redis.host, port: region.redis.port)
        )
        configuration.redisPassword = try deployment.redisPassword(of: region)
        if try deployment.security.isTLS {
            guard let index = region.logic.firstIndex(of: listen) else {
                throw ValidationError("--listen \(listen) is none of region \(region.name)'s logic entries: its certificate is named by that index")
            }
            configuration.tls = try deployment.tlsIdentity(ProcessName(region: region.name, role: .logic, index: index))
        }
        // The first instance in the region's list is the origin's writer.
        let listed = try region.logic.map { try Endpoint($0) }
        configuration.instancesAhead = Array(listed.prefix { $0 != configuration.listen })
        if configuration.instancesAhead.count == listed.count { configuration.instancesAhead = [] }
        configuration.maxBatch = maxBatch
        configuration.clock = deployment.clock
        configuration.limits.maxBodyBytes = maxBodyBytes
        configuration.limits.maxGroupMembers = maxGroupMembers
        configuration.limits.recallWindowMs = UInt64(recallWindowMs)
        configuration.limits.typingInterval = .milliseconds(typingIntervalMs)
        configuration.limits.sessionWait = .milliseconds(sessionWaitMs)
        configuration.peerSyncs = Dictionary(uniqueKeysWithValues: peers.map { ($0.name, $0.sync) })
        configuration.defaultDurability = try region.defaultDurability
        configuration.geoQuorum = region.geoQuorum ?? 1
        configuration.geoTimeout = .milliseconds(region.geoTimeoutMs ?? 2_000)
        // Within the gate's health deadline (3/4 of route's probe timeout), so the
        // gate reports what failed rather than that logic did not answer.
        configuration.healthTimeout = .milliseconds((cluster.route ?? .init()).probeTimeoutMs / 2)
        guard configuration.geoQuorum >= 1, configuration.geoQuorum <= peers.count || configuration.defaultDurability == .local else {
            throw ValidationError("region \(region.name): geoQuorum must be 1...\(peers.count) (its number of peers)")
        }
        configuration.storeFailoverGrace = .milliseconds(Int64(storeFailoverGrace * 1000))
        configuration.telemetry = try deployment.telemetry("parley-logic", region: region.name)
        let logger = deployment.logger("parley.logic")
        let position = region.logic.firstIndex(of: listen)
        configuration.metrics = try deployment.metricsListener(
            metrics, regionFile: position.flatMap { position in region.metrics?.logic.flatMap { $0.indices.contains(position) ? $0[position] : nil } },
            logger: logger
        )
        try await LogicServer.run(configuration, logger: logger)
    }
}
