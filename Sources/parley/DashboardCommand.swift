import ArgumentParser
import Foundation
import ParleyCore
import ParleyDashboard
import ParleyDeployment
import ParleyDrill

/// `parley dashboard`: the operator's page over the whole cluster.
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the operations dashboard: regions, clients, the lag matrix, the checker's verdict, drain and drills.",
        discussion: "Open http://<listen>/ and give it the admin token. See docs/OPERATIONS.md, \"The dashboard\"."
    )

    @Option(help: "Folder holding cluster.json and the region files.")
    var regions = "regions"

    @Option(help: "Where to serve the page and its API (host:port).")
    var listen = "127.0.0.1:7090"

    @Option(help: "The page's folder.")
    var web = "web/dashboard"

    @Option(help: "Folder holding ops/up's pid files, for drills; \"none\": no drills from the page.")
    var run = "run"

    @Option(help: "Seconds between two checks of the regions' agreement.")
    var checkEvery = 5.0

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    func run() async throws {
        let options = try DeploymentOptions.parse(["--regions", regions, "--log-level", logLevel])
        let names = try options.load().cluster.regions
        let files = try names.map { try DeploymentOptions.parse(["--regions", regions, "--region", $0]).load().region }
        guard checkEvery > 0 else { throw ValidationError("--check-every must be positive") }
        var configuration = DashboardConfiguration(
            listen: try Endpoint(listen), regions: files, adminToken: try options.adminToken, web: web
        )
        configuration.checkInterval = .milliseconds(Int64(checkEvery * 1_000))
        if run != "none" {
            configuration.drills = OpsCluster(regionsDirectory: regions, runDirectory: run, parleyBinary: CommandLine.executablePath)
        }
        let logger = options.logger("parley.dashboard")
        // Checks the token, and warns when the development one guards more than loopback.
        _ = try options.adminCredential(listeningOn: [configuration.listen.host], logger: logger)
        try await DashboardServer.run(configuration, logger: logger)
    }
}
