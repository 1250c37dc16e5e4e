import Logging
import ParleyAuth
import ParleyCore
import ParleyRPC
import ParleyStore
import ServiceLifecycle

/// Everything one `parley sync` process needs to know.
public struct SyncConfiguration: Sendable {
    public var region: String
    public var listen: Endpoint
    public var postgres: PostgresLocation
    /// Peer region name → its sync address (the peers pulled from directly).
    public var peers: [String: String]
    /// This process's certificate: serving and pulling are mutual TLS (nil:
    /// plaintext, only when the deployment asks for it).
    public var tls: TLSIdentity?
    /// Exports this process's spans (`ProcessTracing`); nil: tracing off.
    public var telemetry: (any Service)?
    /// Every other region of the cluster, including any not pulled from directly.
    public var origins: Set<String> = []
    /// Commits wake the log watcher at once (LISTEN/NOTIFY); this poll only
    /// covers a lost notification connection.
    public var pollInterval: Duration = .milliseconds(250)
    public var clock = HybridLogicalClock()
    /// Where to serve `GET /health`, and with the admin token `GET /status`,
    /// `GET /metrics` and the digests, if anywhere.
    public var status: StatusListener?
    /// How long `GET /health` waits for this sync's PostgreSQL.
    public var healthTimeout: Duration = .milliseconds(500)

    public init(region: String, listen: Endpoint, postgres: PostgresLocation, peers: [String: String]) {
        self.region = region
        self.listen = listen
        self.postgres = postgres
        self.peers = peers
    }
}

/// Sync's HTTP listener: health for route, status and digests for operators.
public struct StatusListener: Sendable {
    public var endpoint: Endpoint
    /// Guards status, metrics and the digests.
    public var admin: AdminCredential
    /// `GET /status` and `GET /metrics` answer without the token (read-only;
    /// the digests never do): for a deployment whose network already keeps
    /// strangers out.
    public var openStatus: Bool

    public init(endpoint: Endpoint, admin: AdminCredential, openStatus: Bool = false) {
        self.endpoint = endpoint
        self.admin = admin
        self.openStatus = openStatus
    }
}

/// A region's replication process: serves its logs to peers and pulls
/// theirs, as one service group.
public enum SyncServer {
    public static func run(_ configuration: SyncConfiguration, logger: Logger) async throws {
        let store = RegionStore(postgres: configuration.postgres, origin: configuration.region, clock: configuration.clock, logger: logger)
        let watcher = LogWatcher(store: store, interval: configuration.pollInterval, logger: logger)
        let monitor = ReplicationMonitor(region: configuration.region, peers: Array(configuration.peers.keys))
        let applier = ReplicationApplier(store: store, origin: configuration.region, monitor: monitor, logger: logger)
        let pool = RPCClientPool(tls: configuration.tls)
        let links = DirectLinks(origins: configuration.origins.union(configuration.peers.keys))
        let originGuard = OriginGuard(region: configuration.region, store: store, logger: logger)
        let pullers: [any Service] = configuration.peers.sorted { $0.key < $1.key }.map { peer, address in
            PeerPuller(
                region: configuration.region, peer: peer, address: address, pool: pool, applier: applier,
                monitor: monitor, links: links, originGuard: originGuard, logger: logger
            )
        }
        let server = RPCServerService(
            listen: configuration.listen, services: [SyncService(store: store, watcher: watcher, logger: logger)],
            tls: configuration.tls, callers: SyncService.callers
        )
        let ready = AfterPreparing(services: [server] + pullers) {
            try await store.prepare()
            logger.info("sync ready", metadata: ["region": "\(configuration.region)"])
        }
        let group = ServiceGroup(
            configuration: .init(
                // Telemetry first: the group stops services in reverse order, so it flushes last.
                services: (configuration.telemetry.map { [.init(service: $0)] } ?? [])
                    + [.init(service: store), .init(service: pool), .init(service: watcher)]
                    + (configuration.status.map { listen in
                        let health = RegionHealthCheck(
                            region: configuration.region, store: store, monitor: monitor, watcher: watcher, timeout: configuration.healthTimeout
                        )
                        return [.init(service: StatusServer(listener: listen, monitor: monitor, watcher: watcher, store: store, health: health, logger: logger))]
                    } ?? [])
                    + [.init(service: ready)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
