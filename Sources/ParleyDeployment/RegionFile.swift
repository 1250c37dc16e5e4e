import FoundationEssentials
import ParleyCore

/// One region of a deployment, as described by a file in `regions/`.
public struct RegionFile: Codable, Sendable {
    public struct Gate: Codable, Sendable {
        /// Where logic delivers pushes to this gate (`host:port`); also its presence id.
        public var node: String
        public var tcp: String
        public var webSocket: String

        public init(node: String, tcp: String, webSocket: String) {
            self.node = node
            self.tcp = tcp
            self.webSocket = webSocket
        }
    }

    public struct Server: Codable, Sendable {
        public var host: String
        public var port: Int
        /// A file holding the server's password (first line), outside the
        /// repository; relative paths are from the regions folder. None: the
        /// server takes clients without one.
        public var passwordFile: String?
        /// For a server on another host: a PEM file (relative paths from the
        /// regions folder) of the authority that signed its certificate;
        /// every connection is then TLS and checks it. PostgreSQL only.
        public var certificateAuthority: String?
        /// PostgreSQL only: where `ops/up` runs the region's Patroni pair
        /// behind HAProxy, which listens on `host:port` (docs/DEPLOYMENT.md).
        /// The roles never read it: they reach the primary through `host:port`.
        public var ha: HighAvailability?

        public struct HighAvailability: Codable, Sendable {
            /// Each PostgreSQL node (`host:port`), then each one's Patroni REST API.
            public var nodes: [String]
            public var patroni: [String]
            /// The etcd members' client and peer addresses.
            public var etcd: [String]
            public var etcdPeers: [String]

            public init(nodes: [String], patroni: [String], etcd: [String], etcdPeers: [String]) {
                self.nodes = nodes
                self.patroni = patroni
                self.etcd = etcd
                self.etcdPeers = etcdPeers
            }
        }

        public init(host: String, port: Int, passwordFile: String? = nil, certificateAuthority: String? = nil) {
            self.host = host
            self.port = port
            self.passwordFile = passwordFile
            self.certificateAuthority = certificateAuthority
        }

        /// `certificateAuthority` as a path from the working directory.
        public func certificateAuthority(relativeTo regionsFolder: String) -> String? {
            certificateAuthority.map { $0.hasPrefix("/") ? $0 : regionsFolder + "/" + $0 }
        }

        /// The password in force: the environment variable `variable`, else
        /// the first line of `passwordFile`, else none.
        public func resolvedPassword(
            environment variable: String, relativeTo regionsFolder: String,
            environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws -> String? {
            if let password = environment[variable] { return password }
            guard let passwordFile else { return nil }
            let path = passwordFile.hasPrefix("/") ? passwordFile : regionsFolder + "/" + passwordFile
            guard let data = FileManager.default.contents(atPath: path) else {
                throw RegionFileError("cannot read the password file \(path) (set \(variable) instead)")
            }
            let password = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !password.isEmpty else { throw RegionFileError("the password file \(path) is empty") }
            return password
        }
    }

    /// `parley ext`, the region's follow-up work (docs/OPERATIONS.md, "Offline push").
    public struct Ext: Codable, Sendable {
        /// How many ext instances `ops/up` starts (default 1); they share the work.
        public var instances: Int?
        /// Where offline devices are notified (`http://host:port/path`); none: nobody is.
        public var pushGateway: String?
        /// Signs every call to the push gateway (HMAC-SHA256, 32 bytes or more).
        /// Overridden by the PARLEY_PUSH_SECRET environment variable.
        public var pushSecret: String?
        /// Messages to one offline device within this window become one notification (default 2000).
        public var collapseMs: Int?
        /// Where the platform API listens (`host:port`; instance `i` of
        /// several on `port + i`); none: not served (docs/PLATFORM.md).
        public var platform: String?
        /// The platform API's callers: service name → bearer token.
        /// Overridden by the PARLEY_SERVICE_TOKENS environment variable.
        public var serviceTokens: [String: String]?
        /// Notice templates by name: `{param}` is replaced by the caller's value.
        public var templates: [String: String]?

        public init(
            instances: Int? = nil, pushGateway: String? = nil, pushSecret: String? = nil, collapseMs: Int? = nil,
            platform: String? = nil, serviceTokens: [String: String]? = nil, templates: [String: String]? = nil
        ) {
            self.instances = instances
            self.pushGateway = pushGateway
            self.pushSecret = pushSecret
            self.collapseMs = collapseMs
            self.platform = platform
            self.serviceTokens = serviceTokens
            self.templates = templates
        }
    }

    public var name: String
    public var location: GeoLocation
    /// Client networks this region serves first (CIDR), for geo-routing.
    public var clientNetworks: [String]
    public var postgres: Server
    public var redis: Server
    public var logic: [String]
    public var gates: [Gate]
    /// Where this region's `parley sync` serves its logs to peers.
    public var sync: String
    /// Where `parley sync` answers `GET /status` (JSON) and `GET /metrics`
    /// (Prometheus); none when absent.
    public var syncStatus: String?
    /// Default durability of sends accepted here: "local" or "geo".
    public var durability: String
    /// `geo` sends: how many other regions must store the event before the
    /// ack (default 1), and how long a send waits for them (default 2000 ms).
    public var geoQuorum: Int?
    public var geoTimeoutMs: Int?
    /// Where this region's `parley route` answers (`GET /route`); none when absent.
    public var route: String?
    public var ext: Ext?
    /// Where each process answers `GET /metrics` (Prometheus text, behind the
    /// admin token); none: not served. Sync's are on `syncStatus`, route's on `route`.
    public var metrics: Metrics?

    /// Metrics addresses by process, each list in the order of its role's list.
    public struct Metrics: Codable, Sendable {
        /// One per entry of `gates`.
        public var gates: [String]?
        /// One per entry of `logic`.
        public var logic: [String]?
        /// Ext instance `i` of several on `port + i`.
        public var ext: String?

        public init(gates: [String]? = nil, logic: [String]? = nil, ext: String? = nil) {
            self.gates = gates
            self.logic = logic
            self.ext = ext
        }

        /// Ext instance `index`'s address: the base port plus the index.
        public func ext(instance index: Int) throws -> String? {
            guard let ext else { return nil }
            let endpoint = try Endpoint(ext)
            return "\(endpoint.host):\(endpoint.port + index)"
        }
    }

    /// The durability named by `durability`; anything else is a configuration error.
    public var defaultDurability: Durability {
        get throws {
            guard let durability = Durability(rawValue: durability) else {
                throw RegionFileError("region \(name): durability must be \"local\" or \"geo\", not \"\(durability)\"")
            }
            return durability
        }
    }

    public init(
        name: String, location: GeoLocation, clientNetworks: [String], postgres: Server, redis: Server,
        logic: [String], gates: [Gate], sync: String, durability: String
    ) {
        self.name = name
        self.location = location
        self.clientNetworks = clientNetworks
        self.postgres = postgres
        self.redis = redis
        self.logic = logic
        self.gates = gates
        self.sync = sync
        self.durability = durability
    }

    public static func decode(_ bytes: [UInt8]) throws -> RegionFile {
        try JSONDecoder().decode(RegionFile.self, from: Data(bytes))
    }
}

public struct RegionFileError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The deployment: which regions exist and what they share.
public struct ClusterFile: Codable, Sendable {
    public var regions: [String]
    /// Signs client tokens; shared by every region so tokens are valid everywhere.
    /// Overridden by the PARLEY_TOKEN_SECRET environment variable.
    public var tokenSecret: String
    /// The operator's bearer token for admin surfaces (drain, the proxy's
    /// admin API, sync's status and digests). Overridden by the
    /// PARLEY_ADMIN_TOKEN environment variable.
    public var adminToken: String?
    /// How `parley route` decides a region is down or up; defaults when absent.
    public var route: RouteSettings?
    /// Where the cluster's certificates are (`parley certs` makes them): every
    /// client link is TLS (docs/OPERATIONS.md, "TLS").
    public var tls: TLSSettings?
    /// Every link in plaintext: only for a local cluster, and only when asked
    /// for (`PARLEY_TLS=off` does the same without editing the file).
    public var plaintext: Bool?

    public struct TLSSettings: Codable, Sendable {
        /// The folder of `ca.pem` and each process's `<name>.pem` and
        /// `<name>.key` (`ProcessName`); relative paths are from the regions folder.
        public var certificates: String

        public init(certificates: String) { self.certificates = certificates }
    }

    public struct RouteSettings: Codable, Sendable {
        /// Every region is probed this often.
        public var probeIntervalMs: Int
        /// A probe not answered within this counts as failed.
        public var probeTimeoutMs: Int
        /// Failures in a row before a region is declared down (F).
        public var downAfter: Int
        /// Successes in a row before a down region is declared up again (S).
        public var upAfter: Int
        /// Probes in a row that reached a gate answering late (or failed)
        /// before a region is declared down: a busy gate is not a gone one
        /// (default 12, about 10 s at the default interval and timeout).
        public var slowDownAfterProbes: Int?

        public var slowDownAfter: Int { max(downAfter, slowDownAfterProbes ?? 12) }
        /// A region whose replication lags a peer by more than this is shown as
        /// not replicating (it keeps its clients); nil (the default): lag is
        /// shown, never judged.
        public var maxLagSeconds: Double?
        /// A drained region's gates tell their clients to go elsewhere spread
        /// over this window, so the other regions are not stampeded (default 10 s).
        public var drainWindowMs: Int?

        public var drainWindow: Duration { .milliseconds(drainWindowMs ?? 10_000) }

        public init(
            probeIntervalMs: Int = 500, probeTimeoutMs: Int = 400, downAfter: Int = 3, upAfter: Int = 2,
            maxLagSeconds: Double? = nil, drainWindowMs: Int? = nil, slowDownAfterProbes: Int? = nil
        ) {
            self.slowDownAfterProbes = slowDownAfterProbes
            self.probeIntervalMs = probeIntervalMs
            self.probeTimeoutMs = probeTimeoutMs
            self.downAfter = downAfter
            self.upAfter = upAfter
            self.maxLagSeconds = maxLagSeconds
            self.drainWindowMs = drainWindowMs
        }
    }

    public init(regions: [String], tokenSecret: String, adminToken: String? = nil, tls: TLSSettings? = nil, plaintext: Bool? = nil) {
        self.regions = regions
        self.tokenSecret = tokenSecret
        self.adminToken = adminToken
        self.tls = tls
        self.plaintext = plaintext
    }

    /// Whether links are TLS, and with which certificates: plaintext only
    /// when `PARLEY_TLS=off` or `plaintext: true` says so; otherwise the
    /// file must name its certificates.
    public func resolvedSecurity(
        relativeTo regionsFolder: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> LinkSecurity {
        switch environment["PARLEY_TLS"] {
        case "off": return .plaintext
        case nil, "", "on": break
        case let other?: throw RegionFileError("PARLEY_TLS is on or off, not \(other)")
        }
        if let tls { return .tls(CertificateFolder(path: tls.certificates.hasPrefix("/") ? tls.certificates : regionsFolder + "/" + tls.certificates)) }
        if plaintext == true { return .plaintext }
        throw RegionFileError("cluster.json names no certificates: set tls.certificates (made by `parley certs`), or plaintext: true for a local cluster")
    }

    /// The admin token in force: PARLEY_ADMIN_TOKEN, else `adminToken`.
    public func resolvedAdminToken(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard let token = environment["PARLEY_ADMIN_TOKEN"] ?? adminToken else {
            throw RegionFileError("no admin token: set PARLEY_ADMIN_TOKEN or adminToken in cluster.json")
        }
        return token
    }

    /// The token secret in force: PARLEY_TOKEN_SECRET, else `tokenSecret`.
    public func resolvedTokenSecret(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["PARLEY_TOKEN_SECRET"] ?? tokenSecret
    }

    public static func decode(_ bytes: [UInt8]) throws -> ClusterFile {
        try JSONDecoder().decode(ClusterFile.self, from: Data(bytes))
    }
}
