import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyCore
import ParleyDeployment
import ParleyFault

/// A whole region, really running: its own Postgres and Redis, two `parley
/// logic` processes and one `parley gate`, each a separate process of the
/// built binary, on free loopback ports.
///
/// ```swift
/// try await LocalRegion.with { region in
///     let client = region.client(user: "alice", transport: .tcp)
/// }
/// ```
public final class LocalRegion: @unchecked Sendable {
    // @unchecked: the mutable process handles are only replaced by the test
    // that owns the region, one step at a time (restart/kill in test code).
    public let name: String
    /// One server, or a primary and a synchronous standby under Patroni (`highAvailability`).
    public let postgres: any RegionDatabase
    public let redis: RedisServer
    public let directory: String
    public let file: RegionFile
    public let tokenSecret: String
    /// TLS (certificates made by `parley certs` in `directory`/certs) or plaintext.
    public let security: LinkSecurity
    public private(set) var logic: [ChildProcess] = []
    public private(set) var gate: ChildProcess?
    public private(set) var sync: ChildProcess?
    public private(set) var route: ChildProcess?
    /// `parley ext` instances, started by the tests that need them.
    public private(set) var ext: [ChildProcess] = []
    let gateArguments: [String]
    // Set before launch by a cluster that routes peer links through proxies.
    var logicArguments: [String]
    var syncArguments: [String]
    /// Added to the environment of the region's gate, logic, sync and ext processes (e.g. OTEL_EXPORTER_OTLP_ENDPOINT).
    public var environment: [String: String] = [:]

    public static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["PARLEY_BIN"] { return path }
        return FileManager.default.currentDirectoryPath + "/.build/debug/parley"
    }()

    /// Starts a region, runs `body`, and stops every process even if `body` throws.
    public static func with<T: Sendable>(
        name: String = "eu", gateArguments: [String] = [], logicArguments: [String] = [], tls: Bool = false,
        _ body: (LocalRegion) async throws -> T
    ) async throws -> T {
        let region = try await LocalRegion.start(name: name, gateArguments: gateArguments, logicArguments: logicArguments, tls: tls)
        do {
            let result = try await body(region)
            await region.stop()
            return result
        } catch {
            await region.stop()
            throw error
        }
    }

    public static func start(
        name: String, gateArguments: [String] = [], logicArguments: [String] = [], tls: Bool = false
    ) async throws -> LocalRegion {
        let directory = try TestRun.scratch("\(name)-region")
        let secret = "test-secret-\(UUID().uuidString)"
        let security = try writeClusterFile(ClusterFile(regions: [name], tokenSecret: secret, adminToken: "test-admin-\(UUID().uuidString)"), tls: tls, to: directory)
        let region = try await prepare(
            name: name, directory: directory, tokenSecret: secret, security: security, gateArguments: gateArguments, logicArguments: logicArguments
        )
        do {
            try makeCertificates(directory: directory, security: security)
            try await region.launch(withSync: false)
        } catch {
            await region.stop()
            throw error
        }
        return region
    }

    /// Writes cluster.json into `directory`: TLS with certificates in
    /// `directory`/certs, or plaintext (asked for explicitly, as the file must).
    static func writeClusterFile(_ cluster: ClusterFile, tls: Bool, to directory: String) throws -> LinkSecurity {
        var cluster = cluster
        if tls { cluster.tls = .init(certificates: "certs") } else { cluster.plaintext = true }
        try JSONEncoder().encode(cluster).write(to: URL(fileURLWithPath: "\(directory)/cluster.json"))
        return try cluster.resolvedSecurity(relativeTo: directory, environment: [:])
    }

    /// `parley certs` for every region file in `directory`, once they are all written.
    static func makeCertificates(directory: String, security: LinkSecurity) throws {
        guard security.isTLS else { return }
        let (status, output) = try Subprocess.run(binary, ["certs", "--regions", directory])
        guard status == 0 else { throw TestSupportError("parley certs failed (\(status)): \(output)") }
    }

    /// Starts the region's Postgres and Redis and writes its region file into
    /// `directory` (shared by a cluster's regions); `launch` starts its processes.
    static func prepare(
        name: String, directory: String, tokenSecret: String, security: LinkSecurity, gateArguments: [String] = [], logicArguments: [String] = [],
        syncArguments: [String] = [], withRoute: Bool = false, highAvailability: Bool = false
    ) async throws -> LocalRegion {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestSupportError("parley binary not found at \(binary): run `swift build` first (ops/test does)")
        }
        let postgres: any RegionDatabase = highAvailability
            ? try await HighlyAvailablePostgres.start(name: "\(name)-postgres")
            : try await PostgresServer.start(name: "\(name)-postgres")
        // Under Patroni a primary's death is a pause, not an outage: logic
        // rides it out rather than failing the region (docs/DEPLOYMENT.md).
        let logicArguments = highAvailability ? ["--store-failover-grace", "15"] + logicArguments : logicArguments
        let redis: RedisServer
        do { redis = try await RedisServer.start(name: "\(name)-redis") } catch {
            await postgres.stop()
            throw error
        }
        do {
            return try LocalRegion(
                name: name, directory: directory, tokenSecret: tokenSecret, security: security, postgres: postgres, redis: redis,
                gateArguments: gateArguments, logicArguments: logicArguments, syncArguments: syncArguments, withRoute: withRoute
            )
        } catch {
            await redis.stop()
            await postgres.stop()
            throw error
        }
    }

    func launch(withSync: Bool) async throws {
        for index in file.logic.indices { try await startLogic(index) }
        try await startGate()
        if withSync { try await startSync() }
        if file.route != nil { try await startRoute() }
    }

    private init(
        name: String, directory: String, tokenSecret: String, security: LinkSecurity, postgres: any RegionDatabase, redis: RedisServer,
        gateArguments: [String], logicArguments: [String], syncArguments: [String], withRoute: Bool = false
    ) throws {
        self.name = name
        self.postgres = postgres
        self.redis = redis
        self.gateArguments = gateArguments
        self.logicArguments = logicArguments
        self.syncArguments = syncArguments
        self.directory = directory
        self.tokenSecret = tokenSecret
        self.security = security
        let ports = try (0..<13).map { _ in try FreePort.next() }
        var file = RegionFile(
            name: name,
            location: .init(latitude: 0, longitude: 0),
            clientNetworks: ["127.0.0.0/8"],
            postgres: .init(host: "127.0.0.1", port: postgres.port, passwordFile: postgres.passwordFile),
            redis: .init(host: "127.0.0.1", port: redis.port, passwordFile: redis.passwordFile),
            logic: ["127.0.0.1:\(ports[0])", "127.0.0.1:\(ports[1])"],
            gates: [.init(node: "127.0.0.1:\(ports[2])", tcp: "127.0.0.1:\(ports[3])", webSocket: "127.0.0.1:\(ports[4])")],
            sync: "127.0.0.1:\(ports[5])",
            durability: "local"
        )
        file.syncStatus = "127.0.0.1:\(ports[6])"
        if withRoute { file.route = "127.0.0.1:\(ports[7])" }
        file.ext = .init(
            platform: "127.0.0.1:\(ports[8])", serviceTokens: Self.serviceTokens,
            templates: ["order_shipped": "Your order {order} has shipped and arrives {eta}."]
        )
        file.metrics = .init(
            gates: ["127.0.0.1:\(ports[9])"], logic: ["127.0.0.1:\(ports[10])", "127.0.0.1:\(ports[11])"], ext: "127.0.0.1:\(ports[12])"
        )
        self.file = file
        try JSONEncoder().encode(file).write(to: URL(fileURLWithPath: "\(directory)/\(name).json"))
    }

    /// The platform API's callers in every test region: service → token.
    public static let serviceTokens = ["orders": "orders-token-for-tests", "support": "support-token-for-tests"]

    /// The platform API of ext instance 0 (`/v1` included).
    public var platformURL: String { "http://\(file.ext!.platform!)/v1" }

    public var tcpPort: Int { Int(file.gates[0].tcp.split(separator: ":")[1])! }
    public var webSocketURL: String { security.webSocketURL(file.gates[0]) }
    public var longPollURL: String { security.longPollURL(file.gates[0]) }
    /// The authority the gate's certificate chains to (nil: plaintext).
    public var certificateAuthority: String? { security.certificates?.authority }

    public func startLogic(_ index: Int) async throws {
        let listen = file.logic[index]
        let process = try ChildProcess(
            name: "\(name)-logic\(index)", executable: Self.binary,
            arguments: ["logic", "--regions", directory, "--region", name, "--listen", listen, "--log-level", "info"] + logicArguments,
            logPath: "\(directory)/\(name)-logic\(index).log", environment: processEnvironment
        )
        if logic.count > index { logic[index] = process } else { logic.append(process) }
        try await FreePort.waitUntilAccepting(Int(listen.split(separator: ":")[1])!, server: process)
        try await waitForLog(process, "logic ready")
    }

    public func startGate() async throws {
        let process = try ChildProcess(
            name: "\(name)-gate", executable: Self.binary,
            arguments: ["gate", "--regions", directory, "--region", name, "--log-level", "info", "--web", Self.webClientFolder]
                + Self.roomyLimits + gateArguments,
            logPath: "\(directory)/\(name)-gate.log", environment: processEnvironment
        )
        gate = process
        try await FreePort.waitUntilAccepting(tcpPort, server: process)
        try await FreePort.waitUntilAccepting(Int(file.gates[0].webSocket.split(separator: ":")[1])!, server: process)
    }

    private var processEnvironment: [String: String] { ProcessInfo.processInfo.environment.merging(environment) { $1 } }

    /// The repository's browser chat client, which every test gate serves on `/app/`.
    public static let webClientFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("web/chat").path

    /// Request limits far above what any test sends, still taken from Redis
    /// on every request; a test of the limits passes its own after these.
    public static let roomyLimits = [
        "--device-requests-per-second", "100000", "--device-request-burst", "100000",
        "--user-requests-per-second", "100000", "--user-request-burst", "100000",
        "--sign-ins-per-address-per-second", "100000", "--sign-in-burst-per-address", "100000",
    ]

    public func startSync() async throws {
        let process = try ChildProcess(
            name: "\(name)-sync", executable: Self.binary,
            arguments: ["sync", "--regions", directory, "--region", name, "--log-level", "info"] + syncArguments,
            logPath: "\(directory)/\(name)-sync.log", environment: processEnvironment
        )
        sync = process
        try await FreePort.waitUntilAccepting(Int(file.sync.split(separator: ":")[1])!, server: process)
    }

    /// `parley route` for this region, on the region file's `route` address.
    public func startRoute() async throws {
        guard let listen = file.route else { throw TestSupportError("region \(name) has no route address") }
        let process = try ChildProcess(
            name: "\(name)-route", executable: Self.binary,
            arguments: ["route", "--regions", directory, "--region", name, "--log-level", "info"],
            logPath: "\(directory)/\(name)-route.log", environment: processEnvironment
        )
        route = process
        try await FreePort.waitUntilAccepting(Int(listen.split(separator: ":")[1])!, server: process)
    }

    /// `parley ext` instance `index` (a new one, or a restart of that one),
    /// named `ext<index>` in the consumer group, with `environment` added to
    /// the test's own.
    public func startExt(_ index: Int, arguments: [String] = [], environment: [String: String] = [:]) async throws {
        // Instance 0 serves the platform API on the region file's address; the others on ports of their own.
        let platform = index == 0 || arguments.contains("--platform") ? [] : ["--platform", "127.0.0.1:\(try FreePort.next())"]
        let metrics = index == 0 || arguments.contains("--metrics") ? [] : ["--metrics", "127.0.0.1:\(try FreePort.next())"]
        let logPath = "\(directory)/\(name)-ext\(index).log"
        // A restarted instance appends to its log: wait for a new "ext ready".
        let readyBefore = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").components(separatedBy: "ext ready").count - 1
        let process = try ChildProcess(
            name: "\(name)-ext\(index)", executable: Self.binary,
            arguments: ["ext", "--regions", directory, "--region", name, "--name", "ext\(index)", "--index", "\(index)", "--log-level", "info"] + platform + metrics + arguments,
            logPath: logPath, environment: processEnvironment.merging(environment) { $1 }
        )
        if ext.count > index { ext[index] = process } else { ext.append(process) }
        try await waitForLog(process, "ext ready", times: readyBefore + 1)
    }

    /// SIGKILL to every process of the region at once, Postgres and Redis
    /// included: the region is gone as if its machines lost power.
    public func killAll() async {
        let processes = [route, gate, sync].compactMap { $0 } + logic + ext
        await withDiscardingTaskGroup { group in
            for process in processes { group.addTask { await process.kill9() } }
            group.addTask { await self.postgres.kill9() }
            group.addTask { await self.redis.kill9() }
        }
    }

    /// Brings a killed region back: Postgres recovers its data, Redis starts
    /// empty, then every process starts again.
    public func restartAll() async throws {
        try await postgres.restart()
        try await redis.restart()
        try await launch(withSync: true)
    }

    /// The deployment's admin token (its cluster.json's).
    public var adminToken: String {
        get throws {
            let cluster = try ClusterFile.decode(Array(Data(contentsOf: URL(fileURLWithPath: "\(directory)/cluster.json"))))
            return try cluster.resolvedAdminToken(environment: [:])
        }
    }

    /// The body of `GET <path>` on the sync's status listener (`/status` or
    /// `/metrics`), asked with the admin token.
    public func syncHTTP(_ path: String) async throws -> String {
        guard let address = file.syncStatus else { throw TestSupportError("no sync status listener") }
        return try await adminHTTP(address, path)
    }

    /// A process's `GET /metrics` in Prometheus text format, asked with the
    /// admin token: `role` is gate, logic or ext, `index` its position in the
    /// region file (ext instance 0 only).
    public func metrics(_ role: String, _ index: Int = 0) async throws -> String {
        let address: String? = switch role {
        case "gate": file.metrics?.gates?[index]
        case "logic": file.metrics?.logic?[index]
        case "ext": try file.metrics?.ext(instance: index)
        default: nil
        }
        guard let address else { throw TestSupportError("no metrics address for \(role) \(index)") }
        return try await adminHTTP(address, "/metrics")
    }

    /// The body of `GET http://<address><path>` with the admin token; any status but 200 throws.
    private func adminHTTP(_ address: String, _ path: String) async throws -> String {
        guard let url = URL(string: "http://\(address)\(path)") else { throw TestSupportError("bad address \(address)") }
        var request = URLRequest(url: url)
        request.setValue("Bearer \(try adminToken)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw TestSupportError("GET \(url): \(response)") }
        return String(decoding: data, as: UTF8.self)
    }

    /// Graceful stop of the sync process (SIGTERM).
    public func stopSync() async { await sync?.stop() }

    /// Graceful stop of the gate (SIGTERM).
    public func stopGate() async { await gate?.stop() }

    /// Graceful stop of one logic instance (SIGTERM): it ends its links.
    public func stopLogic(_ index: Int) async { await logic[index].stop() }

    /// SIGKILL of one logic instance.
    public func killLogic(_ index: Int) async { await logic[index].kill9() }

    public func stop() async {
        for process in ext { await process.stop() }
        await route?.stop()
        await sync?.stop()
        await gate?.stop()
        for process in logic { await process.stop() }
        await redis.stop()
        await postgres.stop()
    }

    private func waitForLog(_ process: ChildProcess, _ line: String, times: Int = 1, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while process.log.components(separatedBy: line).count - 1 < times {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw TestSupportError("\(process.name) never logged \"\(line)\":\n\(process.log.suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}
