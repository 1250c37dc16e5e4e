import Foundation
import Logging
import NIOSSL
import ParleyAuth
import ParleyCore
import ParleyMetrics
import ParleyPresence
import ParleyProbe
import ParleyRPC
import ParleyRedis
import ServiceLifecycle

/// Everything one `parley gate` process needs to know.
public struct GateConfiguration: Sendable {
    public var region: String
    /// This gate's id in presence: logic sends a device's pushes down the link of the gate with this id.
    public var node: String
    public var tcp: Endpoint
    public var webSocket: Endpoint
    public var logic: [Endpoint]
    public var redis: Endpoint
    /// The region's Redis `requirepass`, if it has one.
    public var redisPassword: String?
    public var tokenSecret: String
    /// The certificate clients see on both listeners, and the gate's own in
    /// its mutual TLS calls to logic; nil: plaintext (only when the
    /// deployment asks for it).
    public var tls: TLSIdentity?
    /// Exports this process's spans (`ProcessTracing`); nil: tracing off.
    public var telemetry: (any Service)?
    /// Where `GET /metrics` is served; nil: not served.
    public var metrics: MetricsListener?
    public var maxFrameSize = 64 * 1024
    public var idleTimeoutMilliseconds: UInt64 = 45_000
    /// A connection that has not signed in by then is closed with `auth_timeout`.
    public var authTimeoutMilliseconds: UInt64 = 10_000
    /// Frames a connection may leave unread (its peer reading too slowly)
    /// before it is evicted with `slow_consumer`.
    public var maxOutboxFrames = 4_096
    /// Request and sign-in rates, and connections per client address.
    public var limits = GateLimits()
    /// How long a connection whose token expired may take to present a fresh
    /// one (`reauth_required`) before it is closed with `token_expired`.
    public var reauthGraceMilliseconds: UInt64 = 30_000
    /// A request logic has not answered by then gets `timeout` (32).
    public var logicTimeout: Duration = .seconds(10)
    public var presenceTTLMilliseconds: UInt64 = 45_000
    /// How long `GET /health` waits for Redis and for each logic instance's answer.
    public var healthTimeout: Duration = .milliseconds(500)
    /// The region's `parley route`, watched for the region being drained or down.
    public var route: String?
    public var routeWatchInterval: Duration = .milliseconds(500)
    public var drainWindow: Duration = .seconds(10)
    /// The longest a long-poll is held with nothing to send.
    public var longPollHold: Duration = .seconds(15)
    /// The browser chat client (`web/chat`), served on `/app/`; nil: not served.
    public var webClient: WebClient?

    public init(
        region: String, node: String, tcp: Endpoint, webSocket: Endpoint,
        logic: [Endpoint], redis: Endpoint, tokenSecret: String
    ) {
        self.region = region
        self.node = node
        self.tcp = tcp
        self.webSocket = webSocket
        self.logic = logic
        self.redis = redis
        self.tokenSecret = tokenSecret
    }
}

/// A gate: TCP and WebSocket listeners, a link to every logic instance, and
/// the idle sweeper, as one service group.
public enum GateServer {
    public static func run(_ configuration: GateConfiguration, logger: Logger) async throws {
        if let warning = TokenAuthority.developmentSecretWarning(
            secret: configuration.tokenSecret, listeningOn: [configuration.tcp.host, configuration.webSocket.host]
        ) {
            logger.critical("\(warning)")
            FileHandle.standardError.write(Data("parley gate: WARNING: \(warning)\n".utf8))
        }
        let serverTLS = try configuration.tls?.serverConfiguration()
        let redis = RedisClient(host: configuration.redis.host, port: configuration.redis.port, password: configuration.redisPassword)
        let pool = RPCClientPool(tls: configuration.tls)
        let registry = ConnectionRegistry(
            maxOutbox: configuration.maxOutboxFrames, maxPerAddress: configuration.limits.connectionsPerAddress
        )
        let links = configuration.logic.map {
            LogicLink(address: $0.description, timeout: configuration.logicTimeout, node: configuration.node, pool: pool, logger: logger) { delivery in
                let identity = GateConnection.Identity(userID: delivery.userID, deviceID: delivery.deviceID)
                guard let connection = registry.connection(for: identity) else { return }
                connection.send(.with {
                    if delivery.hasTyping { $0.typingNotice = delivery.typing } else { $0.push = delivery.push }
                })
                // The user signed this device (or all) out: its connection ends once told.
                if case .tokensRevoked(let revoked) = delivery.push.event.kind { connection.revoked(by: revoked) }
            }
        }
        let context = GateContext(
            region: configuration.region,
            node: configuration.node,
            tokens: try await TokenAuthority(secret: configuration.tokenSecret),
            presence: Presence(redis: redis, ttlMilliseconds: configuration.presenceTTLMilliseconds, now: WallClock.milliseconds),
            registry: registry,
            limits: configuration.limits,
            limiter: RateLimiter(redis: redis, logger: logger),
            logic: LogicRouter(links: links, logger: logger),
            metrics: GateMetrics(),
            heartbeatIntervalMilliseconds: configuration.idleTimeoutMilliseconds / 3,
            logger: logger
        )
        // Telemetry first: the group stops services in reverse order, so it flushes last.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = configuration.telemetry.map { [.init(service: $0)] } ?? []
        services.append(.init(service: pool))
        services += links.map { .init(service: $0) }
        services += [
            .init(service: IdleSweeper(
                registry: registry, idleTimeoutMilliseconds: configuration.idleTimeoutMilliseconds,
                authTimeoutMilliseconds: configuration.authTimeoutMilliseconds,
                reauthGraceMilliseconds: configuration.reauthGraceMilliseconds
            )),
            .init(service: TCPListener(
                listen: configuration.tcp, maxFrameSize: configuration.maxFrameSize,
                tls: try serverTLS.map { try NIOSSLContext(configuration: $0) }, gate: context
            )),
            .init(service: WebSocketListener(
                listen: configuration.webSocket, maxFrameSize: configuration.maxFrameSize, tls: serverTLS, gate: context,
                health: GateHealth(
                    region: configuration.region, node: configuration.node, redis: redis,
                    logic: configuration.logic.map(\.description), pool: pool, timeout: configuration.healthTimeout
                ),
                longPollHold: configuration.longPollHold, webClient: configuration.webClient
            )),
        ]
        if let metrics = configuration.metrics { services.append(.init(service: metrics.service(name: "parley-gate", logger: logger))) }
        if let route = configuration.route {
            services.append(.init(service: RouteWatch(
                region: configuration.region, route: route, interval: configuration.routeWatchInterval,
                drainWindow: configuration.drainWindow, registry: registry, logger: logger
            )))
        }
        // Last, so graceful shutdown reaches it first (the group stops services in reverse order).
        services.append(.init(service: ConnectionDrain(registry: registry)))
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
