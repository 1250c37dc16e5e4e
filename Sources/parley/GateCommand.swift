import ArgumentParser
import ParleyCore
import ParleyDeployment
import ParleyGate
import ParleyProbe
import ParleyRPC

struct GateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate", abstract: "Run a gate: client connections over TCP and WebSocket."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Which of the region's gates this is (index into `gates`).")
    var index = 0

    @Option(help: "Largest client frame accepted, in bytes.")
    var maxFrameSize = 64 * 1024

    @Option(help: "Close a connection silent for this many milliseconds.")
    var idleTimeoutMs: UInt64 = 45_000

    @Option(help: "Close a connection that has not signed in (a valid auth) within this many milliseconds.")
    var authTimeoutMs: UInt64 = 10_000

    @Option(help: "Frames a connection may leave unread before it is evicted with slow_consumer (16).")
    var maxOutboxFrames = 4_096

    @Option(help: "Once a connection's token expires, close it if no fresh token (an `auth` on the connection) comes within this many milliseconds.")
    var reauthGraceMs: UInt64 = 30_000

    @Option(help: "Answer a request with `timeout` (32) when logic has not answered it within this many milliseconds.")
    var logicTimeoutMs = 10_000

    @Option(help: "Hold a long-poll with nothing to send at most this many milliseconds (at most two thirds of the idle timeout).")
    var longPollHoldMs = 15_000

    @Option(help: "Requests per second one device may make after sign-in, shared by the region's gates (0: no limit).")
    var deviceRequestsPerSecond = 50.0

    @Option(help: "Requests one device may make at once before its rate applies.")
    var deviceRequestBurst = 200

    @Option(help: "Requests per second one user may make over all its devices (0: no limit).")
    var userRequestsPerSecond = 100.0

    @Option(help: "Requests one user may make at once before its rate applies.")
    var userRequestBurst = 400

    @Option(help: "Sign-ins per second from one client address, failed ones too (0: no limit).")
    var signInsPerAddressPerSecond = 20.0

    @Option(help: "Sign-ins one client address may make at once before its rate applies.")
    var signInBurstPerAddress = 200

    @Option(help: "Connections one client address may hold open on this gate; more get too_many_connections (17) (0: no cap).")
    var maxConnectionsPerAddress = 1_000

    @Option(help: "The browser chat client's folder, served on /app/ (\"none\": not served).")
    var web = "web/chat"

    @Option(help: "Where this process serves GET /metrics (host:port); default: the region file's metrics entry. \"none\": not served.")
    var metrics: String?

    var limits: GateLimits {
        get throws {
            guard deviceRequestsPerSecond >= 0, userRequestsPerSecond >= 0, signInsPerAddressPerSecond >= 0, maxConnectionsPerAddress >= 0,
                deviceRequestBurst > 0, userRequestBurst > 0, signInBurstPerAddress > 0
            else { throw ValidationError("rates and caps must not be negative, bursts must be positive") }
            var limits = GateLimits()
            limits.perDevice = RateLimit(perSecond: deviceRequestsPerSecond, burst: deviceRequestBurst)
            limits.perUser = RateLimit(perSecond: userRequestsPerSecond, burst: userRequestBurst)
            limits.signInsPerAddress = RateLimit(perSecond: signInsPerAddressPerSecond, burst: signInBurstPerAddress)
            limits.connectionsPerAddress = maxConnectionsPerAddress
            return limits
        }
    }

    func run() async throws {
        let (region, cluster) = try deployment.load()
        guard region.gates.indices.contains(index) else {
            throw ValidationError("region \(region.name) has no gate \(index)")
        }
        let gate = region.gates[index]
        var configuration = GateConfiguration(
            region: region.name,
            node: gate.node,
            tcp: try Endpoint(gate.tcp),
            webSocket: try Endpoint(gate.webSocket),
            logic: try region.logic.map(Endpoint.init),
            redis: Endpoint(host: region.redis.host, port: region.redis.port),
            tokenSecret: try deployment.tokenSecret
        )
        configuration.redisPassword = try deployment.redisPassword(of: region)
        configuration.tls = try deployment.tlsIdentity(ProcessName(region: region.name, role: .gate, index: index))
        configuration.maxFrameSize = maxFrameSize
        configuration.idleTimeoutMilliseconds = idleTimeoutMs
        configuration.authTimeoutMilliseconds = authTimeoutMs
        configuration.reauthGraceMilliseconds = reauthGraceMs
        configuration.maxOutboxFrames = maxOutboxFrames
        configuration.limits = try limits
        configuration.logicTimeout = .milliseconds(logicTimeoutMs)
        guard longPollHoldMs > 0 else { throw ValidationError("--long-poll-hold-ms must be positive") }
        // A held poll must end well within the idle timeout, or the session would die holding it.
        configuration.longPollHold = .milliseconds(min(UInt64(longPollHoldMs), idleTimeoutMs * 2 / 3))
        configuration.presenceTTLMilliseconds = max(idleTimeoutMs, 15_000)
        configuration.route = region.route
        let routeSettings = cluster.route ?? .init()
        configuration.routeWatchInterval = .milliseconds(routeSettings.probeIntervalMs)
        configuration.drainWindow = routeSettings.drainWindow
        // The gate answers with what failed before route's probe gives up on it.
        configuration.healthTimeout = .milliseconds(routeSettings.probeTimeoutMs * 3 / 4)
        if web != "none" {
            let routes = ([region] + (try deployment.peers())).compactMap(\.route)
            configuration.webClient = WebClient(folder: web, region: region.name, routes: routes)
        }
        configuration.telemetry = try deployment.telemetry("parley-gate", region: region.name)
        let logger = deployment.logger("parley.gate")
        configuration.metrics = try deployment.metricsListener(
            metrics, regionFile: region.metrics?.gates.flatMap { $0.indices.contains(index) ? $0[index] : nil }, logger: logger
        )
        try await GateServer.run(configuration, logger: logger)
    }
}
