import ArgumentParser
import ParleyCore
import ParleyGate
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
        configuration.maxFrameSize = maxFrameSize
        configuration.idleTimeoutMilliseconds = idleTimeoutMs
        configuration.authTimeoutMilliseconds = authTimeoutMs
        configuration.reauthGraceMilliseconds = reauthGraceMs
        configuration.maxOutboxFrames = maxOutboxFrames
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
        try await GateServer.run(configuration, logger: deployment.logger("parley.gate"))
    }
}
