import Logging
import ParleyCore
import ParleyMetrics
import ParleyPresence
import ParleyRPC
import ParleyRedis
import ParleyStore
import ServiceLifecycle

/// Everything one `parley logic` process needs to know.
public struct LogicConfiguration: Sendable {
    public var region: String
    public var listen: Endpoint
    public var postgres: PostgresLocation
    public var redis: Endpoint
    /// The region's Redis `requirepass`, if it has one.
    public var redisPassword: String?
    /// This instance's certificate: its RPC server and its calls are mutual
    /// TLS (nil: plaintext, only when the deployment asks for it).
    public var tls: TLSIdentity?
    /// Exports this process's spans (`ProcessTracing`); nil: tracing off.
    public var telemetry: (any Service)?
    /// Where `GET /metrics` is served; nil: not served.
    public var metrics: MetricsListener?
    public var presenceTTLMilliseconds: UInt64 = 45_000
    public var maxBatch = 256
    public var limits = LogicLimits()
    /// Other regions' sync addresses, asked to confirm `geo` sends.
    public var peerSyncs: [String: String] = [:]
    public var defaultDurability = Durability.local
    public var geoQuorum = 1
    public var geoTimeout = Duration.seconds(2)
    public var clock = HybridLogicalClock()
    /// The region's logic instances listed ahead of this one, the writer
    /// first: this instance hands its changes to the first it has a link to
    /// (`WriterHandoff`). Empty on the writer itself.
    public var instancesAhead: [Endpoint] = []
    /// How long a change handed to the writer may wait for its answer; below
    /// the gate's own deadline, so the device hears why.
    public var handoffTimeout: Duration = .seconds(8)
    /// How long the `Health` RPC waits for PostgreSQL and Redis.
    public var healthTimeout: Duration = .milliseconds(300)
    /// How long PostgreSQL may be unreachable before this instance reports
    /// it failed and gives up on commits: the time a Patroni pair takes to
    /// promote its standby (docs/DEPLOYMENT.md). Zero for a single server,
    /// whose loss is the region's and sends its clients elsewhere at once.
    public var storeFailoverGrace: Duration = .zero

    public init(region: String, listen: Endpoint, postgres: PostgresLocation, redis: Endpoint) {
        self.region = region
        self.listen = listen
        self.postgres = postgres
        self.redis = redis
    }
}

/// A logic instance: Postgres pool, group committer, push dispatcher and the
/// `Logic` RPC server, run as one service group with graceful shutdown.
public enum LogicServer {
    public static func run(_ configuration: LogicConfiguration, logger: Logger) async throws {
        let store = RegionStore(postgres: configuration.postgres, origin: configuration.region, clock: configuration.clock, logger: logger)
        let redis = RedisClient(host: configuration.redis.host, port: configuration.redis.port, password: configuration.redisPassword)
        let presence = Presence(redis: redis, ttlMilliseconds: configuration.presenceTTLMilliseconds, now: WallClock.milliseconds)
        let gates = GateLinks()
        let metrics = LogicMetrics()
        let dispatcher = PushDispatcher(presence: presence, gates: gates, metrics: metrics, logger: logger)
        let followUps = FollowUpAnnouncer(redis: redis, logger: logger)
        let committer = GroupCommitter(store: store, rules: CommitRules(maxGroupMembers: configuration.limits.maxGroupMembers, recallWindowMs: configuration.limits.recallWindowMs), maxBatch: configuration.maxBatch, failoverGrace: configuration.storeFailoverGrace, metrics: metrics, logger: logger) { events in
            dispatcher.enqueue(events)
            followUps.announce(events)
        }
        let pool = RPCClientPool(tls: configuration.tls)
        let geo = GeoDurability(
            region: configuration.region, peers: configuration.peerSyncs, quorum: configuration.geoQuorum,
            timeout: configuration.geoTimeout, pool: pool, logger: logger
        )
        let writer = WriterHandoff(links: configuration.instancesAhead.map {
            LogicLink(address: $0.description, timeout: configuration.handoffTimeout, node: nil, pool: pool, logger: logger)
        }, logger: logger)
        let forwarder = TypingForwarder(region: configuration.region, peers: configuration.peerSyncs, pool: pool, logger: logger)
        let typing = TypingRelay(store: store, dispatcher: dispatcher, forwarder: forwarder, interval: configuration.limits.typingInterval)
        let handler = RequestHandler(
            region: configuration.region, store: store, committer: committer, writer: writer, geo: geo,
            defaultDurability: configuration.defaultDurability, limits: configuration.limits, typing: typing, logger: logger
        )
        let service = LinkService(
            handler: handler, links: gates, health: LogicHealth(store: store, redis: redis, timeout: configuration.healthTimeout, failoverGrace: configuration.storeFailoverGrace), metrics: metrics,
            logger: logger
        )
        // Requests are served only once the schema is migrated.
        let server = AfterPreparing(services: [RPCServerService(
            listen: configuration.listen, services: [service], tls: configuration.tls, callers: LinkService.callers
        )]) {
            try await store.prepare()
            logger.info("logic ready", metadata: ["region": "\(configuration.region)", "listen": "\(configuration.listen)"])
        }
        // Telemetry first: the group stops services in reverse order, so it flushes last.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = configuration.telemetry.map { [.init(service: $0)] } ?? []
        services += [
            .init(service: store),
            .init(service: pool),
            .init(service: dispatcher),
            .init(service: followUps),
            .init(service: forwarder),
            .init(service: ReplicatedPushes(store: store, dispatcher: dispatcher, typing: typing, logger: logger)),
            .init(service: committer),
        ]
        services += writer.links.map { .init(service: $0) }
        if let metrics = configuration.metrics { services.append(.init(service: metrics.service(name: "parley-logic", logger: logger))) }
        services.append(.init(service: server))
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        await redis.close()
    }
}
