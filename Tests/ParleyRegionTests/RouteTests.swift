import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyClient
import ParleyCore
import ParleyDeployment
import ParleyFault
import ParleyProbe
import ParleyTestSupport
import Testing

/// `parley route` in front of three regions really running.
@Suite(.serialized, .timeLimit(.minutes(3))) struct RouteTests {
    private struct Answer: Decodable {
        struct Region: Decodable { var region: String; var gates: [Gate] }
        struct Gate: Decodable { var tcp: String; var webSocket: String; var longPoll: String }
        var regions: [Region]
    }

    private struct Status: Decodable {
        var state: String
        var draining: Bool
        var failuresInARow: Int
        var wentDown: Int
        var cameUp: Int
        var probes: Int
        var probesFailed: Int
        var lastChangeAtProbe: Int?
        var lastProbeError: String?
        var servingGates: [String]
        var replicating: Bool?
    }

    private func http(_ port: Int, _ method: String, _ path: String, token: String? = nil) async throws -> (Int, Data) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// A fault proxy in front of us's gate health listener.
    private func usHealthProxy(_ cluster: LocalCluster, name: String, faults: LinkFaults) async throws -> FaultProxy {
        let health = cluster["us"].file.gates[0].webSocket.split(separator: ":")
        return try await FaultProxy.start(name: name, upstreamHost: String(health[0]), upstreamPort: Int(health[1])!, faults: faults)
    }

    /// A route of eu's started with `flags`, whose own copy of the region
    /// files puts us's gate health behind `proxy`; once it accepts.
    private func routeProbingUsThrough(
        _ proxy: FaultProxy, _ cluster: LocalCluster, name: String, flags: [String]
    ) async throws -> (ChildProcess, port: Int) {
        let directory = try TestRun.scratch(name)
        for region in ["cluster"] + cluster.regions.map(\.name) {
            try FileManager.default.copyItem(atPath: "\(cluster["eu"].directory)/\(region).json", toPath: "\(directory)/\(region).json")
        }
        var proxied = cluster["us"].file
        proxied.gates[0].webSocket = "127.0.0.1:\(proxy.port)"
        try JSONEncoder().encode(proxied).write(to: URL(fileURLWithPath: "\(directory)/us.json"))
        let port = try FreePort.next()
        let route = try ChildProcess(
            name: name, executable: LocalRegion.binary,
            arguments: ["route", "--regions", directory, "--region", "eu", "--listen", "127.0.0.1:\(port)"] + flags,
            logPath: "\(directory)/route.log"
        )
        try await FreePort.waitUntilAccepting(port, server: route)
        return (route, port)
    }

    /// How the route listening on `port` sees us.
    private func usStatus(_ port: Int) async throws -> Status? {
        try JSONDecoder().decode([String: Status].self, from: try await http(port, "GET", "/status").1)["us"]
    }

    @Test func answersNearestHealthyFirstDropsARegionAfterFFailedProbesAndTakesItBackAfterS() async throws {
        try await LocalCluster.with(syncArguments: ["ap": ["--open-status"]]) { cluster in
            let port = try FreePort.next()
            let route = try ChildProcess(
                name: "eu-route", executable: LocalRegion.binary,
                arguments: ["route", "--regions", cluster["eu"].directory, "--region", "eu", "--listen", "127.0.0.1:\(port)",
                            "--probe-interval-ms", "200", "--down-after", "3", "--up-after", "2"],
                logPath: "\(cluster["eu"].directory)/eu-route.log"
            )
            try await FreePort.waitUntilAccepting(port, server: route)
            func regions(_ query: String) async throws -> [String] {
                let (code, data) = try await http(port, "GET", "/route?\(query)")
                guard code == 200 else { return ["HTTP \(code)"] }
                return try JSONDecoder().decode(Answer.self, from: data).regions.map(\.region)
            }
            func status() async throws -> [String: Status] {
                try JSONDecoder().decode([String: Status].self, from: try await http(port, "GET", "/status").1)
            }

            #expect(try await regions("hint=us") == ["us", "eu", "ap"], "the hint first, then the file's order (equal locations)")
            #expect(try await regions("addr=127.0.0.1") == ["eu", "us", "ap"], "every region serves 127/8: the file's order")
            let answer = try JSONDecoder().decode(Answer.self, from: try await http(port, "GET", "/route?hint=ap").1)
            #expect(answer.regions.first?.gates.first?.tcp == cluster["ap"].file.gates[0].tcp)
            #expect(answer.regions.first?.gates.first?.webSocket == "ws://\(cluster["ap"].file.gates[0].webSocket)/ws")
            #expect(answer.regions.first?.gates.first?.longPoll == "http://\(cluster["ap"].file.gates[0].webSocket)/lp")

            // us's gate goes away: after three failed probes in a row us leaves every answer.
            await cluster["us"].stopGate()
            #expect(try await eventually(.seconds(10)) { try await regions("hint=us") == ["eu", "ap"] }, "\(route.log.suffix(2_000))")
            let down = try await status()["us"]
            #expect(down?.state == "down" && down?.wentDown == 1 && (down?.failuresInARow ?? 0) >= 3)
            try await cluster["us"].startGate()
            #expect(try await eventually(.seconds(10)) { try await regions("hint=us") == ["us", "eu", "ap"] })
            #expect(try await status()["us"]?.cameUp == 1)

            // Draining needs the admin token: without it, or with another, 401 and nothing changes.
            let admin = try cluster["eu"].adminToken
            #expect(try await http(port, "POST", "/drain/ap").0 == 401)
            #expect(try await http(port, "POST", "/drain/ap", token: "not-the-admin-token-of-this-cluster").0 == 401)
            #expect(try await status()["ap"]?.draining == false)

            // A drained region leaves the answers at once and comes back when undrained.
            #expect(try await http(port, "POST", "/drain/ap", token: admin).0 == 200)
            #expect(try await regions("hint=ap") == ["eu", "us"])
            #expect(try await status()["ap"]?.draining == true)
            #expect(try await http(port, "POST", "/undrain/ap").0 == 401)
            #expect(try await status()["ap"]?.draining == true)
            #expect(try await http(port, "POST", "/undrain/ap", token: admin).0 == 200)
            #expect(try await regions("hint=ap") == ["ap", "eu", "us"])
            #expect(try await http(port, "POST", "/drain/mars", token: admin).0 == 404)

            // Sync: health is public (route probes it); status, metrics and the digests need the
            // admin token, unless --open-status opens status and metrics (ap's); digests never open.
            func syncCode(_ region: String, _ path: String, token: String? = nil) async throws -> Int {
                let headers = token.map { [("Authorization", "Bearer \($0)")] } ?? []
                return try await TCPProbe.http("GET", cluster[region].file.syncStatus ?? "", path: path, headers: headers, timeout: .seconds(5)).status
            }
            #expect(try await syncCode("eu", "/health") == 200)
            for path in ["/status", "/metrics", "/digest/integrity", "/digest/conversations/buckets"] {
                #expect(try await syncCode("eu", path) == 401, "\(path)")
                #expect(try await syncCode("eu", path, token: "not-the-admin-token-of-this-cluster") == 401, "\(path)")
                #expect(try await syncCode("eu", path, token: admin) == 200, "\(path)")
            }
            #expect(try await syncCode("ap", "/status") == 200)
            #expect(try await syncCode("ap", "/metrics") == 200)
            #expect(try await syncCode("ap", "/digest/integrity") == 401)
            #expect(try await status().values.allSatisfy { $0.wentDown <= 1 }, "no flapping")
            await route.stop()
        }
    }

    /// us's gate health is probed through a fault proxy that resets 1% of
    /// connections: single failures never take us down. Cut, us is down
    /// after three failed probes.
    @Test func onePercentOfProbesFailingCausesNoFlapWhileARegionReallyGoneIsDownAfterThreeProbes() async throws {
        try await LocalCluster.with { cluster in
            let proxy = try await usHealthProxy(cluster, name: "us-health", faults: LinkFaults(dropRate: 0.01))
            let (route, port) = try await routeProbingUsThrough(
                proxy, cluster, name: "flaky-route",
                // A long timeout: only the proxy's resets fail a probe, not a loaded machine's slowness.
                flags: ["--probe-interval-ms", "50", "--probe-timeout-ms", "3000", "--down-after", "3", "--up-after", "2"]
            )
            func us() async throws -> Status? { try await usStatus(port) }
            // Until at least three probes failed (about 300 probes): never down.
            #expect(try await eventually(.seconds(120)) { (try await us()?.probesFailed ?? 0) >= 3 }, "\(route.log.suffix(2_000))")
            let flaky = try await us()
            #expect(flaky?.state == "up" && flaky?.wentDown == 0, "1% of probes failing must not flap: \(String(describing: flaky))\n\(route.log.suffix(2_000))")

            proxy.set(LinkFaults(state: .cut))
            let probesAtCut = try await us()?.probes ?? 0
            #expect(try await eventually(.seconds(10)) { try await us()?.state == "down" })
            let down = try await us()
            // Three failed probes, and at most one that was in flight at the cut.
            #expect((down?.lastChangeAtProbe ?? .max) - probesAtCut <= 4, "\(String(describing: down)) after the cut at probe \(probesAtCut)")
            await route.stop()
            await proxy.stop()
        }
    }

    /// Slow is not gone: us's gate health answers through a proxy that holds
    /// every answer past the probe timeout, as a gate absorbing a reconnect
    /// storm does. Twice `downAfter` such probes leave us up; a gate that
    /// takes connections and never answers is down after `slowDownAfter`
    /// troubled probes in a row, not before.
    @Test func aGateAnsweringLateKeepsItsRegionUpAndOneThatNeverAnswersIsDownAfterSlowDownAfter() async throws {
        try await LocalCluster.with { cluster in
            let proxy = try await usHealthProxy(cluster, name: "us-slow-health", faults: LinkFaults())
            let (route, port) = try await routeProbingUsThrough(
                proxy, cluster, name: "slow-route",
                flags: ["--probe-interval-ms", "100", "--probe-timeout-ms", "1000", "--down-after", "3", "--up-after", "2",
                        "--slow-down-after", "12"]
            )
            func us() async throws -> Status? { try await usStatus(port) }
            #expect(try await eventually(.seconds(30)) { (try await us()?.probes ?? 0) >= 3 })

            // Every health answer 1.5 s late: slow, six probes in a row.
            proxy.set(LinkFaults(delayMs: 1_500))
            let probesAtDelay = try await us()?.probes ?? 0
            #expect(try await eventually(.seconds(60)) { (try await us()?.probes ?? 0) >= probesAtDelay + 6 }, "\(route.log.suffix(2_000))")
            let slow = try await us()
            #expect(slow?.state == "up" && slow?.wentDown == 0, "late answers are not a gone gate: \(String(describing: slow))")
            #expect(slow?.lastProbeError?.contains("did not answer in time") == true, "\(String(describing: slow))")

            // Answering in time again; then taking connections and never answering.
            proxy.set(LinkFaults())
            #expect(try await eventually(.seconds(30)) { try await us()?.lastProbeError == nil })
            proxy.set(LinkFaults(state: .blackhole))
            let probesAtHang = try await us()?.probes ?? 0
            #expect(try await eventually(.seconds(60)) { try await us()?.state == "down" }, "\(route.log.suffix(2_000))")
            let down = try await us()
            let probesToDown = (down?.lastChangeAtProbe ?? 0) - probesAtHang
            #expect((12...13).contains(probesToDown), "down after 12 troubled probes (one may have been in flight): \(String(describing: down))")
            await route.stop()
            await proxy.stop()
        }
    }

    /// Whether a region can serve, not whether it can replicate, moves its
    /// clients: us without its sync stays up and keeps its devices connected.
    /// Every gate is probed: a region file whose first gate is gone still
    /// serves through the second, and answers list only the gate that works.
    @Test func aRegionWithoutItsSyncKeepsItsClientsAndOnlyGatesThatPassAreListed() async throws {
        let settings = ClusterFile.RouteSettings(probeIntervalMs: 200, probeTimeoutMs: 1_000, downAfter: 3, upAfter: 2)
        try await LocalCluster.with(route: settings) { cluster in
            let us = cluster["us"]
            let usRoute = Int(us.file.route!.split(separator: ":")[1])!
            func status(_ port: Int) async throws -> [String: Status] {
                try JSONDecoder().decode([String: Status].self, from: try await http(port, "GET", "/status").1)
            }
            let ursula = try await us.connect("ursula")
            let ulrich = try await us.connect("ulrich")
            #expect(try await eventually(.seconds(30)) { try await status(usRoute)["us"]?.state == "up" })

            await us.stopSync()
            #expect(try await eventually(.seconds(10)) { try await status(usRoute)["us"]?.replicating == false }, "\(us.route?.log.suffix(2_000) ?? "")")
            // Long enough for route to have declared us down, were sync's health still judged.
            let probesAtLoss = try await status(usRoute)["us"]?.probes ?? 0
            #expect(try await eventually(.seconds(30)) { (try await status(usRoute)["us"]?.probes ?? 0) >= probesAtLoss + settings.downAfter + 3 })
            let withoutSync = try await status(usRoute)["us"]
            #expect(withoutSync?.state == "up" && withoutSync?.wentDown == 0, "us can serve without its sync: \(String(describing: withoutSync))")
            #expect(withoutSync?.servingGates == [us.file.gates[0].tcp])
            _ = try await ursula.client.send(to: .user("ulrich"), body: "still here")
            #expect(await ulrich.inbox.wait { $0.count(ofMessage: "still here") == 1 })
            #expect(await ursula.client.recoveries.isEmpty, "ursula was never sent away")
            #expect(await ursula.client.isConnected)
            try await us.startSync()
            #expect(try await eventually(.seconds(20)) { try await status(usRoute)["us"]?.replicating == true })

            // A route whose copy of us's file lists a gate that does not exist before the real one.
            let directory = try TestRun.scratch("route-two-gates")
            for name in ["cluster"] + cluster.regions.map(\.name) {
                try FileManager.default.copyItem(atPath: "\(cluster["eu"].directory)/\(name).json", toPath: "\(directory)/\(name).json")
            }
            var twoGates = us.file
            let nowhere = try (0..<3).map { _ in "127.0.0.1:\(try FreePort.next())" }
            twoGates.gates.insert(.init(node: nowhere[0], tcp: nowhere[1], webSocket: nowhere[2]), at: 0)
            twoGates.route = nil
            try JSONEncoder().encode(twoGates).write(to: URL(fileURLWithPath: "\(directory)/us.json"))
            let port = try FreePort.next()
            let route = try ChildProcess(
                name: "two-gate-route", executable: LocalRegion.binary,
                arguments: ["route", "--regions", directory, "--region", "eu", "--listen", "127.0.0.1:\(port)",
                            "--probe-interval-ms", "200", "--probe-timeout-ms", "1000", "--down-after", "3", "--up-after", "2"],
                logPath: "\(directory)/route.log"
            )
            try await FreePort.waitUntilAccepting(port, server: route)
            #expect(try await eventually(.seconds(30)) { (try await status(port)["us"]?.probes ?? 0) >= settings.downAfter + 2 })
            let seen = try await status(port)["us"]
            #expect(seen?.state == "up" && seen?.wentDown == 0 && seen?.servingGates == [us.file.gates[0].tcp], "\(String(describing: seen))")
            let answer = try JSONDecoder().decode(Answer.self, from: try await http(port, "GET", "/route?hint=us").1)
            #expect(answer.regions.first?.region == "us")
            #expect(answer.regions.first?.gates.map(\.tcp) == [us.file.gates[0].tcp], "only the gate that passed its probe")
            await route.stop()
            await ursula.stop()
            await ulrich.stop()
        }
    }
}
