import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyClient
import ParleyTestSupport
import Testing

/// Every process's `/metrics` (docs/OPERATIONS.md, "Metrics") on two
/// running regions, against the names the Grafana dashboard charts.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MetricsTests {
    private static let dashboard = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ops/grafana/parley.json")

    /// The `parley_…` names the dashboard's queries use.
    private static func dashboardNames() throws -> Set<String> {
        struct Dashboard: Decodable {
            struct Panel: Decodable {
                struct Target: Decodable { var expr: String }
                var targets: [Target]?
            }
            var panels: [Panel]
        }
        let dashboard = try JSONDecoder().decode(Dashboard.self, from: Data(contentsOf: dashboard))
        let expressions = dashboard.panels.flatMap { $0.targets ?? [] }.map(\.expr)
        let name = /parley_[a-z0-9_]+/
        return Set(expressions.flatMap { $0.matches(of: name).map { String($0.output) } })
    }

    /// Sample name → summed value over its label sets, from Prometheus text.
    private static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let value = Double(parts[parts.count - 1]) else { continue }
            let name = String(parts[0].prefix { $0 != "{" })
            samples[name, default: 0] += value
        }
        return samples
    }

    private static func get(_ url: String, token: String? = nil) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: url)!)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test func everyNameTheDashboardChartsIsServedAndCountsWhatHappened() async throws {
        let wanted = try Self.dashboardNames()
        #expect(wanted.count >= 25, "the dashboard's queries: \(wanted.sorted())")
        try await LocalCluster.with(["eu", "us"], route: .init()) { cluster in
            try await cluster["eu"].startExt(0)
            let ann = try await cluster["eu"].connect("ann")
            let bob = try await cluster["us"].connect("bob")
            #expect(try await eventually {
                try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" }
            }, "each registration reached the other region")
            _ = try await ann.client.send(to: .user("bob"), body: "counted")
            #expect(await bob.inbox.wait { $0.containsMessage("counted") }, "replicated to us and pushed there")

            // Each process's text, once every listener answers (a process logs
            // ready before its metrics listener has bound).
            var texts: [String: String] = [:]
            #expect(try await eventually {
                for region in cluster.regions {
                    for (role, count) in [("gate", 1), ("logic", 2), ("ext", region.name == "eu" ? 1 : 0)] {
                        for index in 0..<count where texts["\(region.name) \(role) \(index)"] == nil {
                            texts["\(region.name) \(role) \(index)"] = try? await region.metrics(role, index)
                        }
                    }
                    texts["\(region.name) sync"] = try? await region.syncHTTP("/metrics")
                    texts["\(region.name) route"] = try? await Self.get("http://\(region.file.route!)/metrics").body
                }
                return texts.count == 11
            }, "metrics from: \(texts.keys.sorted())")

            var served: [String: Double] = [:]
            for text in texts.values { served.merge(Self.samples(text)) { $0 + $1 } }
            let missing = wanted.filter { served[$0] == nil }
            #expect(missing.isEmpty, "charted but served by no process: \(missing.sorted())")

            // The numbers count what happened: sign-ins, frames, a commit, pushes on both sides.
            let eu = Self.samples(texts["eu gate 0"]!)
            #expect(eu["parley_gate_sign_ins_total"] ?? 0 >= 1)
            #expect(eu["parley_gate_frames_in_total"] ?? 0 >= 2, "auth and send")
            #expect(eu["parley_gate_connections"] == 1, "ann's one TCP connection")
            let euLogic = Self.samples(texts["eu logic 0"]!).merging(Self.samples(texts["eu logic 1"]!)) { $0 + $1 }
            #expect(euLogic["parley_logic_commit_batch_size_count"] ?? 0 >= 2, "ann's sign-in and send committed")
            #expect(euLogic["parley_logic_requests_total"] ?? 0 >= 2)
            let usLogic = Self.samples(texts["us logic 0"]!).merging(Self.samples(texts["us logic 1"]!)) { $0 + $1 }
            #expect(usLogic["parley_logic_pushes_total"] ?? 0 >= 1, "the replicated message pushed to bob")
            #expect(texts["eu gate 0"]!.contains(#"parley_gate_connections{transport="tcp"} 1"#), "\(texts["eu gate 0"]!)")

            // Behind the admin token, like sync's.
            let gate = cluster["eu"].file.metrics!.gates![0]
            #expect(try await Self.get("http://\(gate)/metrics").status == 401)
            #expect(try await Self.get("http://\(gate)/metrics", token: "not-the-admin-token-at-all").status == 401)
            for user in [ann, bob] { await user.stop() }
        }
    }
}
