import ArgumentParser
import Foundation
import ParleyCore
import ParleyDeployment
import ParleyExt

struct ExtCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ext", abstract: "Run an ext instance: the region's follow-up work (offline push) and platform API, off the core's path."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "This instance's name in the region's consumer group; unique in the region (default: ext-<host>-<pid>).")
    var name: String?

    @Option(help: "Which of the region's ext instances this is: its certificate is <region>-ext-<index> (`parley certs`).")
    var index = 0

    @Option(help: "Push gateway URL (http://host:port/path); overrides the region file's ext.pushGateway.")
    var pushGateway: String?

    @Option(help: "Messages to one offline device within this window become one notification (milliseconds; default: the region file's, or 2000).")
    var collapseMs: Int?

    @Option(help: "Work another instance has held this long without finishing it is taken over (milliseconds).")
    var claimIdleMs = 30_000

    @Option(help: "Events still not done this long after they were in the log are handed out again (milliseconds).")
    var rederiveAfterMs = 10_000

    @Option(help: "Calls to the push gateway for one notification before it is given up.")
    var maxAttempts = 12

    @Option(help: "First wait before a failed push gateway call is retried (milliseconds); it doubles, with jitter, up to 5 minutes.")
    var retryBaseMs = 1_000

    @Option(help: "Where this instance serves the platform API (host:port); default: the region file's ext.platform. \"none\": not served.")
    var platform: String?

    @Option(help: "Broadcast notices posted together, in one batch whose progress is then stored.")
    var broadcastBatch = 500

    @Option(help: "Broadcast notices this instance posts per second at most.")
    var broadcastRate = 600

    @Option(help: "A broadcast whose instance stopped renewing its lease this long is taken over (milliseconds).")
    var broadcastLeaseMs = 15_000

    @Option(help: "Where this process serves GET /metrics (host:port); default: the region file's metrics entry. \"none\": not served.")
    var metrics: String?

    func run() async throws {
        let (region, _) = try deployment.load()
        let host = ProcessInfo.processInfo.hostName
        var configuration = ExtConfiguration(
            region: region.name, postgres: try deployment.postgres(of: region),
            redis: Endpoint(host: region.redis.host, port: region.redis.port),
            consumer: name ?? "ext-\(host)-\(ProcessInfo.processInfo.processIdentifier)"
        )
        configuration.redisPassword = try deployment.redisPassword(of: region)
        configuration.tls = try deployment.tlsIdentity(ProcessName(region: region.name, role: .ext, index: index))
        if let url = pushGateway ?? region.ext?.pushGateway {
            guard let secret = ProcessInfo.processInfo.environment["PARLEY_PUSH_SECRET"] ?? region.ext?.pushSecret else {
                throw ValidationError("region \(region.name): a push gateway needs ext.pushSecret (or PARLEY_PUSH_SECRET)")
            }
            do { configuration.pushGateway = try PushGateway(url: url, secret: secret) } catch {
                throw ValidationError("region \(region.name): \(error)")
            }
        }
        configuration.collapse = .milliseconds(collapseMs ?? region.ext?.collapseMs ?? 2_000)
        configuration.claimIdle = .milliseconds(claimIdleMs)
        configuration.rederiveAfter = .milliseconds(rederiveAfterMs)
        configuration.maxAttempts = maxAttempts
        configuration.pushBackoff = Backoff(base: .milliseconds(retryBaseMs), cap: .seconds(300), jitter: 0.5)
        configuration.platform = try platformConfiguration(region)
        configuration.telemetry = try deployment.telemetry("parley-ext", region: region.name)
        let logger = deployment.logger("parley.ext")
        configuration.metrics = try deployment.metricsListener(metrics, regionFile: try region.metrics?.ext(instance: index), logger: logger)
        try await ExtServer.run(configuration, logger: logger)
    }

    private func platformConfiguration(_ region: RegionFile) throws -> PlatformConfiguration? {
        guard let address = platform ?? region.ext?.platform, address != "none" else { return nil }
        let tokens: ServiceTokens
        do {
            if let list = ProcessInfo.processInfo.environment["PARLEY_SERVICE_TOKENS"] {
                tokens = try ServiceTokens(parsing: list)
            } else {
                tokens = try ServiceTokens(region.ext?.serviceTokens ?? [:])
            }
        } catch {
            throw ValidationError("region \(region.name): \(error)")
        }
        guard !tokens.isEmpty else {
            throw ValidationError("region \(region.name): the platform API needs ext.serviceTokens (or PARLEY_SERVICE_TOKENS)")
        }
        var configuration = PlatformConfiguration(
            listen: try Endpoint(address), tokens: tokens, templates: NoticeTemplates(region.ext?.templates ?? [:]),
            logic: try region.logic.map(Endpoint.init)
        )
        guard broadcastBatch > 0, broadcastRate > 0, broadcastLeaseMs > 0 else {
            throw ValidationError("--broadcast-batch, --broadcast-rate and --broadcast-lease-ms must be positive")
        }
        configuration.broadcasts.batch = broadcastBatch
        configuration.broadcasts.rate = broadcastRate
        configuration.broadcasts.lease = .milliseconds(broadcastLeaseMs)
        return configuration
    }
}
