import ArgumentParser
import ParleyCore
import ParleyDeployment
import ParleyRPC
import ParleySync

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "Run a region's replication: serve its logs to peers and pull theirs."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Flag(help: "Serve GET /status and GET /metrics without the admin token (the digests still need it).")
    var openStatus = false

    @Option(help: "Do not pull from this peer region (repeatable): cuts the direct link, for tests and drills.")
    var withoutPeer: [String] = []

    func run() async throws {
        let (region, _) = try deployment.load()
        let postgres = try deployment.postgres(of: region)
        let peers = Dictionary(uniqueKeysWithValues: try deployment.peers().filter { !withoutPeer.contains($0.name) }.map { ($0.name, $0.sync) })
        var configuration = SyncConfiguration(region: region.name, listen: try Endpoint(region.sync), postgres: postgres, peers: peers)
        configuration.clock = deployment.clock
        configuration.tls = try deployment.tlsIdentity(ProcessName(region: region.name, role: .sync))
        configuration.origins = Set(try deployment.peers().map(\.name))
        configuration.telemetry = try deployment.telemetry("parley-sync", region: region.name)
        let logger = deployment.logger("parley.sync")
        configuration.status = try region.syncStatus.map { address in
            let endpoint = try Endpoint(address)
            return StatusListener(
                endpoint: endpoint, admin: try deployment.adminCredential(listeningOn: [endpoint.host], logger: logger), openStatus: openStatus
            )
        }
        try await SyncServer.run(configuration, logger: logger)
    }
}
