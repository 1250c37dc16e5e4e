import Foundation
import ParleyCore
import ParleyDeployment
import ParleyFault

/// Several regions really running, replicating through their `parley sync`:
/// each with its own Postgres, Redis, logic instances and gate, all sharing
/// one regions folder and one token secret.
public final class LocalCluster: Sendable {
    public let regions: [LocalRegion]
    /// With `faultyLinks`, the proxy each region's sync and logic reach a
    /// peer's sync through, by (from, to): what `to` serves `from` crosses it.
    private let links: [String: FaultProxy]

    public func link(from: String, to: String) -> FaultProxy { links["\(from)>\(to)"]! }

    /// Whether the links between regions go through fault proxies (`faultyLinks`).
    public var hasFaultyLinks: Bool { !links.isEmpty }

    /// Sets the faults of both directions between two regions.
    public func setLink(_ a: String, _ b: String, _ faults: LinkFaults) {
        link(from: a, to: b).set(faults)
        link(from: b, to: a).set(faults)
    }

    public subscript(name: String) -> LocalRegion { regions.first { $0.name == name }! }

    /// Starts the regions, runs `body`, and stops everything even if `body`
    /// throws. With `route` settings each region also runs `parley route`
    /// (on its region file's `route` address); the regions named in
    /// `highAvailability` have their PostgreSQL as a Patroni pair behind HAProxy.
    public static func with<T: Sendable>(
        _ names: [String] = ["eu", "us", "ap"], logicArguments: [String: [String]] = [:], syncArguments: [String: [String]] = [:],
        faultyLinks: Bool = false, route: ClusterFile.RouteSettings? = nil, tls: Bool = false, environment: [String: String] = [:],
        highAvailability: Set<String> = [], _ body: (LocalCluster) async throws -> T
    ) async throws -> T {
        let directory = try TestRun.scratch("cluster")
        let secret = "test-secret-\(UUID().uuidString)"
        var clusterFile = ClusterFile(regions: names, tokenSecret: secret, adminToken: "test-admin-\(UUID().uuidString)")
        clusterFile.route = route
        let security = try LocalRegion.writeClusterFile(clusterFile, tls: tls, to: directory)
        var started: [LocalRegion] = []
        var links: [String: FaultProxy] = [:]
        do {
            for name in names {
                started.append(try await LocalRegion.prepare(
                    name: name, directory: directory, tokenSecret: secret, security: security,
                    logicArguments: logicArguments[name] ?? [], syncArguments: syncArguments[name] ?? [], withRoute: route != nil,
                    highAvailability: highAvailability.contains(name)
                ))
            }
            if faultyLinks {
                for from in started {
                    for to in started where to !== from {
                        let proxy = try await FaultProxy.start(
                            name: "\(from.name)>\(to.name)", listenPort: try FreePort.next(),
                            upstreamHost: "127.0.0.1", upstreamPort: Int(to.file.sync.split(separator: ":")[1])!
                        )
                        links[proxy.name] = proxy
                        let via = ["--peer-sync", "\(to.name)=127.0.0.1:\(proxy.port)"]
                        from.logicArguments += via
                        from.syncArguments += via
                    }
                }
            }
            try LocalRegion.makeCertificates(directory: directory, security: security)
            for region in started {
                region.environment = environment
                try await region.launch(withSync: true)
            }
        } catch {
            await stop(started, links)
            throw error
        }
        let cluster = LocalCluster(regions: started, links: links)
        do {
            let result = try await body(cluster)
            await stop(started, links)
            return result
        } catch {
            await stop(started, links)
            throw error
        }
    }

    private static func stop(_ regions: [LocalRegion], _ links: [String: FaultProxy]) async {
        await withDiscardingTaskGroup { group in
            for region in regions { group.addTask { await region.stop() } }
        }
        for link in links.values { await link.stop() }
    }

    private init(regions: [LocalRegion], links: [String: FaultProxy]) {
        self.regions = regions
        self.links = links
    }

    /// Runs `parley check` against the cluster: its exit status and output (stdout, then stderr).
    public func check(_ arguments: [String] = []) throws -> (status: Int32, output: String) {
        try Subprocess.run(LocalRegion.binary, ["check", "--regions", regions[0].directory] + arguments)
    }

    /// Runs `parley check --watch SECONDS` until it has printed `lines` lines
    /// (or ended), then stops it: the lines it printed.
    public func watchCheck(every seconds: Double, lines wanted: Int) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: LocalRegion.binary)
        process.arguments = ["check", "--regions", regions[0].directory, "--watch", "\(seconds)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        var text = ""
        while text.split(separator: "\n").count < wanted {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // ended
            text += String(decoding: chunk, as: UTF8.self)
        }
        return text.split(separator: "\n").map(String.init)
    }

    /// The end of every region's sync log, for failure messages.
    public var syncLogs: String {
        regions.map { "--- \($0.name) sync:\n" + String(($0.sync?.log ?? "not running").suffix(2_000)) }.joined(separator: "\n")
    }
}
