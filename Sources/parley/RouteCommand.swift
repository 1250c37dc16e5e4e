import ArgumentParser
import Foundation
import ParleyCore
import ParleyDeployment
import ParleyProbe
import ParleyRPC
import ParleyRoute

/// `parley route`: serves the route API, and the operator's view of it.
struct RouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route", abstract: "Tell clients which regions to use, nearest healthy first; probe every region's health.",
        subcommands: [Serve.self, Status.self, Drain.self, Undrain.self], defaultSubcommand: Serve.self
    )

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run this region's route instance (the default).")

        @OptionGroup var deployment: DeploymentOptions

        @Option(help: "Listen address (default: the region file's `route`).")
        var listen: String?

        @Option(help: "Probe interval in milliseconds (default: cluster.json's route settings, else 500).")
        var probeIntervalMs: Int?

        @Option(help: "A probe not answered within this many milliseconds fails (default: cluster.json's, else 400).")
        var probeTimeoutMs: Int?

        @Option(help: "Failures in a row before a region is down (default 3).")
        var downAfter: Int?

        @Option(help: "Successes in a row before a down region is up again (default 2).")
        var upAfter: Int?

        @Option(help: "Probes in a row that found its gates slow or failed before a region is down (default 12).")
        var slowDownAfter: Int?

        func run() async throws {
            let (region, cluster) = try deployment.load()
            guard let address = listen ?? region.route else {
                throw ValidationError("no route address: set `route` in \(region.name).json or pass --listen")
            }
            let endpoint = try Endpoint(address)
            var settings = cluster.route ?? .init()
            if let probeIntervalMs { settings.probeIntervalMs = probeIntervalMs }
            if let probeTimeoutMs { settings.probeTimeoutMs = probeTimeoutMs }
            if let downAfter { settings.downAfter = downAfter }
            if let upAfter { settings.upAfter = upAfter }
            if let slowDownAfter { settings.slowDownAfterProbes = slowDownAfter }
            guard settings.downAfter > 0, settings.upAfter > 0, settings.probeIntervalMs > 0, settings.probeTimeoutMs > 0 else {
                throw ValidationError("probe interval, probe timeout, down-after and up-after must be positive")
            }
            let regions = try [region] + deployment.peers()
            let logger = deployment.logger("parley.route")
            try await RouteServer.run(
                listen: (endpoint.host, endpoint.port), regions: cluster.regions.compactMap { name in regions.first { $0.name == name } },
                settings: settings, security: try deployment.security, admin: deployment.adminCredential(listeningOn: [endpoint.host], logger: logger), logger: logger
            )
        }
    }

    /// Every route instance named in the region files, by region.
    struct Instances: ParsableArguments {
        @Option(help: "Folder holding cluster.json and the region files.")
        var regions = "regions"

        /// The admin token, for draining.
        var adminToken: String {
            get throws { try DeploymentOptions.parse(["--regions", regions]).adminToken }
        }

        func all() throws -> [(region: String, address: String)] {
            let options = try DeploymentOptions.parse(["--regions", regions])
            let cluster = try options.load().cluster
            return try cluster.regions.compactMap { name in
                let file = try RegionFile.decode(Array(Data(contentsOf: URL(fileURLWithPath: "\(regions)/\(name).json"))))
                return file.route.map { (name, $0) }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show how every route instance sees every region: state, drain, probes, changes.",
            discussion: "Exit 0 when every instance answered and sees every region up and undrained; 1 otherwise. Whether a region replicates is shown and does not change the exit status."
        )

        @OptionGroup var instances: Instances

        @Flag(help: "Print each instance's answer as JSON.")
        var json = false

        func run() async throws {
            var allWell = true
            for (name, address) in try instances.all() {
                guard let (status, body) = try? await RouteAdmin(address: address).status() else {
                    print("route \(name) (\(address)): no answer")
                    allWell = false
                    continue
                }
                if json {
                    print("{\"route\": \"\(name)\", \"status\": \(body)}")
                } else {
                    print("route \(name) (\(address)):")
                    for (region, entry) in status.sorted(by: { $0.key < $1.key }) {
                        let state = entry.state == .up && entry.draining ? "draining" : entry.state.rawValue
                        let changes = "down \(entry.wentDown)×, up again \(entry.cameUp)×"
                        let probes = "probes \(entry.probesFailed)/\(entry.probes) failed"
                        let error = entry.lastProbeError.map { "; last: \($0)" } ?? ""
                        let replication = switch entry.replicating {
                        case true?: "; replicating"
                        case false?: "; not replicating: \(entry.replicationError ?? "")"
                        case nil: ""
                        }
                        print("  \(region.padding(toLength: 6, withPad: " ", startingAt: 0)) \(state.padding(toLength: 9, withPad: " ", startingAt: 0)) \(changes); \(probes)\(error)\(replication)")
                    }
                }
                if status.values.contains(where: { $0.state != .up || $0.draining }) { allWell = false }
            }
            if !allWell { throw ExitCode(1) }
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move clients away from a region: every route instance leaves it out of its answers, and its gates tell their clients to go elsewhere over the drain window."
        )

        @OptionGroup var instances: Instances

        @Argument(help: "The region to drain.")
        var region: String

        func run() async throws { try await setDraining(region, true, instances) }
    }

    struct Undrain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a drained region take clients again.")

        @OptionGroup var instances: Instances

        @Argument(help: "The region to undrain.")
        var region: String

        func run() async throws { try await setDraining(region, false, instances) }
    }
}

/// Tells every route instance; an instance that does not answer is named
/// (exit 1): it would keep answering with the old state until told again.
private func setDraining(_ region: String, _ draining: Bool, _ instances: RouteCommand.Instances) async throws {
    var missed: [String] = []
    let token = try instances.adminToken
    for (name, address) in try instances.all() {
        do {
            try await RouteAdmin(address: address, adminToken: token).setDraining(region, draining)
            print("route \(name): \(region) \(draining ? "draining" : "undrained")")
        } catch let error as PeerError where error.kind == .refused(status: 404) {
            throw ValidationError("no region \(region) in the cluster")
        } catch let error as PeerError where error.kind == .refused(status: 401) {
            throw ValidationError("route \(name) refused the admin token: set PARLEY_ADMIN_TOKEN to the deployment's")
        } catch {
            print("route \(name) (\(address)): no answer")
            missed.append(name)
        }
    }
    if !missed.isEmpty { throw ExitCode(1) }
}
