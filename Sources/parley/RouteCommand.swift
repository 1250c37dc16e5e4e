import ArgumentParser
import ParleyCore
import ParleyRPC
import ParleyRoute

struct RouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route", abstract: "Tell clients which regions to use, nearest healthy first; probe every region's health."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Listen address (default: the region file's `route`).")
    var listen: String?

    @Option(help: "Probe interval in milliseconds (default: cluster.json's route settings, else 500).")
    var probeIntervalMs: Int?

    @Option(help: "Failures in a row before a region is down (default 3).")
    var downAfter: Int?

    @Option(help: "Successes in a row before a down region is up again (default 2).")
    var upAfter: Int?

    func run() async throws {
        let (region, cluster) = try deployment.load()
        guard let address = listen ?? region.route else {
            throw ValidationError("no route address: set `route` in \(region.name).json or pass --listen")
        }
        let endpoint = try Endpoint(address)
        var settings = cluster.route ?? .init()
        if let probeIntervalMs { settings.probeIntervalMs = probeIntervalMs }
        if let downAfter { settings.downAfter = downAfter }
        if let upAfter { settings.upAfter = upAfter }
        guard settings.downAfter > 0, settings.upAfter > 0, settings.probeIntervalMs > 0 else {
            throw ValidationError("probe interval, down-after and up-after must be positive")
        }
        let regions = try [region] + deployment.peers()
        try await RouteServer.run(
            listen: (endpoint.host, endpoint.port), regions: cluster.regions.compactMap { name in regions.first { $0.name == name } },
            settings: settings, logger: deployment.logger("parley.route")
        )
    }
}
