import ArgumentParser
import Foundation
import Logging
import ParleyCore
import ParleyFault
import ParleyRPC

/// `parley proxy`: fault proxies on the links between regions, for benchmarks
/// and drills (this kernel has no netem).
///
/// Link `eu-us` carries what `eu` pulls from `us`'s sync (and `eu`'s geo
/// durability waits on `us`): `eu`'s roles reach `us` through it when started
/// with the flags `parley proxy flags --region eu` prints.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy", abstract: "Fault proxies on the links between regions: delay, loss, drop, blackhole, cut.",
        subcommands: [Run.self, Flags.self, Set.self, Status.self], defaultSubcommand: Run.self
    )

    struct Layout: ParsableArguments {
        @Option(help: "Folder holding cluster.json and the region files.")
        var regions = "regions"

        @Option(help: "First listening port: link from the i-th region to the j-th listens on base + 10·i + j.")
        var basePort = 7500

        /// Every ordered pair of regions: (name, listen port, upstream sync address).
        func links() throws -> [(name: String, from: String, to: String, port: Int, upstream: String)] {
            let options = try DeploymentOptions.parse(["--regions", regions])
            let names = try options.load().cluster.regions
            var links: [(String, String, String, Int, String)] = []
            for (i, from) in names.enumerated() {
                for (j, to) in names.enumerated() where i != j {
                    let peer = try DeploymentOptions.parse(["--regions", regions, "--region", to]).load().region
                    links.append(("\(from)-\(to)", from, to, basePort + 10 * i + j, peer.sync))
                }
            }
            return links
        }
    }

    struct Admin: ParsableArguments {
        @Option(help: "Where the proxy answers GET /links and PUT /links/<name>.")
        var admin = "127.0.0.1:7590"

        /// The deployment's admin token, which guards the proxy's admin API.
        func token(_ layout: Layout) throws -> String {
            try DeploymentOptions.parse(["--regions", layout.regions]).adminToken
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one proxy per ordered pair of regions, all healthy at start.")
        @OptionGroup var layout: Layout
        @OptionGroup var admin: Admin

        func run() async throws {
            var proxies: [String: FaultProxy] = [:]
            for link in try layout.links() {
                let upstream = try Endpoint(link.upstream)
                proxies[link.name] = try await FaultProxy.start(
                    name: link.name, listenPort: link.port, upstreamHost: upstream.host, upstreamPort: upstream.port
                )
            }
            let endpoint = try Endpoint(admin.admin)
            let credential = try DeploymentOptions.parse(["--regions", layout.regions])
                .adminCredential(listeningOn: [endpoint.host], logger: Logger(label: "parley.proxy"))
            print("proxy: \(proxies.count) links, admin on http://\(endpoint)/links")
            try await ProxyAdminServer.run(links: proxies, host: endpoint.host, port: endpoint.port, admin: credential)
            for proxy in proxies.values { await proxy.stop() }
        }
    }

    struct Flags: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the --peer-sync flags that route a region's links through the proxy.")
        @OptionGroup var layout: Layout
        @Option(help: "The region whose outgoing links to route.")
        var region: String

        func run() throws {
            let flags = try layout.links().filter { $0.from == region }.map { "--peer-sync \($0.to)=127.0.0.1:\($0.port)" }
            print(flags.joined(separator: " "))
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set what a running proxy does to one link, or to both directions between two regions.",
            discussion: "Example: parley proxy set eu-us --delay-ms 50 --both   (50 ms each way between eu and us)"
        )
        @OptionGroup var layout: Layout
        @OptionGroup var admin: Admin
        @Argument(help: "Link name, FROM-TO (GET /links lists them).")
        var link: String
        @Flag(help: "Also the reverse link (TO-FROM).")
        var both = false
        @Option(help: "open, cut (reset, refuse) or blackhole (hold everything).")
        var state: LinkFaults.State = .open
        @Option(help: "Added one-way delay in milliseconds.")
        var delayMs = 0
        @Option(help: "Fraction of new connections reset at once (0...1).")
        var drop = 0.0
        @Option(help: "Fraction of chunks delayed by a retransmission (0...1).")
        var loss = 0.0
        @Option(help: "Extra delay of a lost chunk, in milliseconds.")
        var retransmitMs = 200

        func run() async throws {
            let faults = LinkFaults(state: state, delayMs: delayMs, dropRate: drop, lossRate: loss, retransmitMs: retransmitMs)
            var names = [link]
            if both {
                let parts = link.split(separator: "-")
                guard parts.count == 2 else { throw ValidationError("--both wants a link named FROM-TO") }
                names.append("\(parts[1])-\(parts[0])")
            }
            let proxy = ProxyAdmin(address: admin.admin, adminToken: try admin.token(layout))
            for name in names { print(try await proxy.set(name, faults)) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every link of a running proxy: its faults and connection counts.")
        @OptionGroup var layout: Layout
        @OptionGroup var admin: Admin

        func run() async throws {
            print(try await ProxyAdmin(address: admin.admin, adminToken: try admin.token(layout)).links())
        }
    }
}

extension LinkFaults.State: ExpressibleByArgument {}

