import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
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
            let links = proxies
            let router = Router()
            router.get("/links") { _, _ -> Response in
                try json(links.mapValues(LinkReport.init))
            }
            router.put("/links/:name") { request, context -> Response in
                guard let name = context.parameters.get("name"), let proxy = links[name] else {
                    throw HTTPError(.notFound, message: "no such link; GET /links lists them")
                }
                let faults = try await request.decode(as: LinkFaults.self, context: context)
                proxy.set(faults)
                return try json(LinkReport(proxy))
            }
            let endpoint = try Endpoint(admin.admin)
            var logger = Logger(label: "parley.proxy")
            logger.logLevel = .notice
            let app = Application(router: router, configuration: .init(address: .hostname(endpoint.host, port: endpoint.port)), logger: logger)
            print("proxy: \(links.count) links, admin on http://\(endpoint)/links")
            try await app.run()
            for proxy in links.values { await proxy.stop() }
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
            for name in names {
                var request = URLRequest(url: try adminURL(admin.admin, "/links/\(name)"))
                request.httpMethod = "PUT"
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = try JSONEncoder().encode(faults)
                print(try await send(request))
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every link of a running proxy: its faults and connection counts.")
        @OptionGroup var admin: Admin

        func run() async throws {
            print(try await send(URLRequest(url: try adminURL(admin.admin, "/links"))))
        }
    }
}

extension LinkFaults.State: ExpressibleByArgument {}

/// One link as the admin API reports it.
struct LinkReport: Codable {
    var listenPort: Int
    var upstream: String
    var faults: LinkFaults
    var accepted: Int
    var dropped: Int

    init(_ proxy: FaultProxy) {
        listenPort = proxy.port
        upstream = "\(proxy.upstreamHost):\(proxy.upstreamPort)"
        faults = proxy.faults
        (accepted, dropped) = proxy.counts
    }
}

private func json(_ value: some Encodable) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

private func adminURL(_ admin: String, _ path: String) throws -> URL {
    guard let url = URL(string: "http://\(admin)\(path)") else { throw ValidationError("bad --admin address \(admin)") }
    return url
}

private func send(_ request: URLRequest) async throws -> String {
    let (data, response) = try await URLSession.shared.data(for: request)
    let body = String(decoding: data, as: UTF8.self)
    guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw ValidationError("proxy admin: \(body)") }
    return body
}
