import ArgumentParser
import ParleyCore
import ParleyRPC
import ParleySync

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "Run a region's replication: serve its logs to peers and pull theirs."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Do not pull from this peer region (repeatable): cuts the direct link, for tests and drills.")
    var withoutPeer: [String] = []

    func run() async throws {
        let (region, _) = try deployment.load()
        let postgres = deployment.postgres(of: region)
        let peers = Dictionary(uniqueKeysWithValues: try deployment.peers().filter { !withoutPeer.contains($0.name) }.map { ($0.name, $0.sync) })
        var configuration = SyncConfiguration(region: region.name, listen: try Endpoint(region.sync), postgres: postgres, peers: peers)
        configuration.clock = deployment.clock
        configuration.origins = Set(try deployment.peers().map(\.name))
        configuration.status = try region.syncStatus.map { try Endpoint($0) }
        try await SyncServer.run(configuration, logger: deployment.logger("parley.sync"))
    }
}
