import Logging
import ParleyCore
import ParleyMetrics
import ParleyPresence
import ParleyRPC
import ParleyRedis
import ParleyStore
import ServiceLifecycle

/// Everything one `parley ext` process needs to know.
public struct ExtConfiguration: Sendable {
    public var region: String
    public var postgres: PostgresLocation
    public var redis: Endpoint
    /// The region's Redis `requirepass`, if it has one.
    public var redisPassword: String?
    /// This instance's certificate for its calls to logic (mutual TLS; nil: plaintext).
    public var tls: TLSIdentity?
    /// Exports this process's spans (`ProcessTracing`); nil: tracing off.
    public var telemetry: (any Service)?
    /// Where `GET /metrics` is served; nil: not served.
    public var metrics: MetricsListener?
    /// This instance's name in the consumer group: unique within the region.
    public var consumer: String
    /// Where offline devices are notified; none: nobody is.
    public var pushGateway: PushGateway?
    /// Messages to one device within this window become one notification.
    public var collapse: Duration = .seconds(2)
    /// Work a consumer has held this long without acknowledging it is taken over.
    public var claimIdle: Duration = .seconds(30)
    /// Events still not done this long after they were in the log are announced again.
    public var rederiveAfter: Duration = .seconds(10)
    public var cursorInterval: Duration = .seconds(1)
    /// Events per job at most: a long run announced at once is cut.
    public var jobSize: UInt64 = 1_000
    public var pushTimeout: Duration = .seconds(5)
    public var pushBackoff = Backoff(base: .seconds(1), cap: .seconds(300), jitter: 0.5)
    public var maxAttempts = 12
    public var maxConcurrentPushes = 32
    public var outboxInterval: Duration = .milliseconds(200)
    public var presenceTTLMilliseconds: UInt64 = 45_000
    /// The platform API; none: not served by this instance.
    public var platform: PlatformConfiguration?

    public init(region: String, postgres: PostgresLocation, redis: Endpoint, consumer: String) {
        self.region = region
        self.postgres = postgres
        self.redis = redis
        self.consumer = consumer
    }
}

/// An ext instance: the region's heavy, non-core work, out of the core's
/// way (docs/ARCHITECTURE.md, "Follow-up work: ext"). It shares the
/// region's PostgreSQL and Redis but serves no request: a slow or crashed
/// ext delays notifications, never a message.
public enum ExtServer {
    public static func run(_ configuration: ExtConfiguration, logger: Logger) async throws {
        let store = RegionStore(postgres: configuration.postgres, origin: configuration.region, clock: HybridLogicalClock(), logger: logger)
        let redis = RedisClient(host: configuration.redis.host, port: configuration.redis.port, password: configuration.redisPassword)
        let stream = RedisClient(host: configuration.redis.host, port: configuration.redis.port, password: configuration.redisPassword)
        let presence = Presence(redis: redis, ttlMilliseconds: configuration.presenceTTLMilliseconds, now: WallClock.milliseconds)
        // Ready once prepared and, with the platform API, once it listens.
        let ready: @Sendable () -> Void = {
            logger.info("ext ready", metadata: [
                "region": "\(configuration.region)", "consumer": "\(configuration.consumer)",
                "push_gateway": "\(configuration.pushGateway.map { "http://\($0.address)\($0.path)" } ?? "none")",
                "platform": "\(configuration.platform.map { "http://\($0.listen)/v1" } ?? "none")",
            ])
        }
        let metrics = ExtMetrics()
        var services: [any Service] = [
            FollowUpWorker(configuration: configuration, store: store, presence: presence, stream: stream, metrics: metrics, logger: logger),
            CursorKeeper(configuration: configuration, store: store, redis: redis, logger: logger),
        ]
        if let platform = configuration.platform {
            let pool = RPCClientPool(tls: configuration.tls)
            let links = platform.logic.map {
                LogicLink(address: $0.description, timeout: platform.callTimeout, node: nil, pool: pool, logger: logger)
            }
            let poster = NoticePoster(links: links)
            let runner = BroadcastRunner(
                region: configuration.region, owner: configuration.consumer, settings: platform.broadcasts, store: store, poster: poster,
                logger: logger
            )
            let api = PlatformAPI(
                region: configuration.region, templates: platform.templates, poster: poster, store: store, broadcasts: runner, logger: logger
            )
            services.append(pool)
            services.append(contentsOf: links as [any Service])
            services.append(runner)
            services.append(try PlatformServer.application(platform, api: api, logger: logger, onRunning: ready))
        }
        if let metrics = configuration.metrics { services.append(metrics.service(name: "parley-ext", logger: logger)) }
        if let gateway = configuration.pushGateway {
            services.append(PushSender(configuration: configuration, gateway: gateway, store: store, presence: presence, metrics: metrics, logger: logger))
        } else {
            logger.notice("no push gateway configured: offline devices are not notified")
        }
        let work = AfterPreparing(services: services) {
            try await store.prepare()
            if configuration.platform == nil { ready() }
        }
        let group = ServiceGroup(
            configuration: .init(
                // Telemetry first: the group stops services in reverse order, so it flushes last.
                services: (configuration.telemetry.map { [.init(service: $0)] } ?? []) + [.init(service: store), .init(service: work)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        await stream.close()
        await redis.close()
    }
}
