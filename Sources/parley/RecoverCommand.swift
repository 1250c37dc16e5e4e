import ArgumentParser
import ParleyCheck
import ParleyDeployment
import ParleyRPC
import ParleySync

/// `parley recover`: re-imports the events a region's database lost of its
/// own origin from the peers, and lifts the fence its sync set.
struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Bring back the events of a region's own origin that its database lost (after a restore), then lift its fence.",
        discussion: """
            Run it on the region's own host, with its sync running (which brings the other \
            origins back meanwhile): it asks every peer's sync how much of the region's origin \
            it holds, pulls the missing events from the one holding most, applies each once its \
            dependencies are applied here, and lifts the fence. docs/OPERATIONS.md, \
            "A region's log went backwards".
            """
    )

    @OptionGroup var deployment: DeploymentOptions

    func run() async throws {
        let (region, _) = try deployment.load()
        let peers = try deployment.peers()
        let token = try deployment.adminToken
        var statusOf: [String: String] = [:]
        for peer in peers {
            guard let status = peer.syncStatus else { throw ValidationError("region \(peer.name) has no syncStatus address: recover asks every peer") }
            statusOf[peer.name] = status
        }
        let name = region.name
        let outcome = try await LogRecovery.run(
            region: name, postgres: try deployment.postgres(of: region), peers: Dictionary(uniqueKeysWithValues: peers.map { ($0.name, $0.sync) }),
            tls: try deployment.tlsIdentity(ProcessName(region: name, role: .sync)), clock: deployment.clock,
            peerHolds: { [statusOf] peer in
                try await HTTPRegionDigests(name: peer, address: statusOf[peer] ?? "", adminToken: token).status().applied[name] ?? 0
            },
            logger: deployment.logger("parley.recover")
        )
        if outcome.headAfter > outcome.headBefore {
            print("re-imported \(name)-\(outcome.headBefore + 1)...\(name)-\(outcome.headAfter) from \(outcome.peer); \(outcome.fence == nil ? "there was no fence" : "fence lifted")")
        } else {
            print("nothing to re-import: \(name) holds \(name)-\(outcome.headBefore), as much as any peer; \(outcome.fence == nil ? "there was no fence" : "fence lifted")")
        }
    }
}
