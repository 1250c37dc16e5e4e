import Foundation
import ParleyClient
import ParleyTestSupport
import Testing

/// Traces over OTLP (docs/OPERATIONS.md, "Traces"): two regions export to a
/// real OTLP/gRPC receiver (Tests/otlp-receiver, grpcio and
/// opentelemetry-proto from PyPI), and one message's spans form one trace
/// from the gate in eu to the push in us.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TracingTests {
    private struct Span: Decodable {
        var trace_id: String
        var span_id: String
        var parent_span_id: String
        var name: String
        var service: String
        var region: String
        var attributes: [String: String]?
    }

    private static let receiver = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("otlp-receiver/otlp_receiver.py").path

    private static func spans(in file: String) -> [Span] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Span.self, from: Data($0.utf8)) }
    }

    @Test func oneTraceFollowsAMessageFromTheGateThroughCommitAndPushIntoThePeerRegionsApplyAndPush() async throws {
        let port = try FreePort.next()
        let directory = try TestRun.scratch("otlp")
        let output = "\(directory)/spans.jsonl"
        let receiver = try ChildProcess(
            name: "otlp-receiver", executable: "/usr/bin/env", arguments: ["python3", Self.receiver, "\(port)", output],
            logPath: "\(directory)/receiver.log"
        )
        do {
            try await FreePort.waitUntilAccepting(port, server: receiver)
            try await LocalCluster.with(
                ["eu", "us"], logicArguments: ["eu": ["--log-level", "debug"]],
                environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(port)", "PARLEY_LOG_FORMAT": "json"]
            ) { cluster in
                let ann = try await cluster["eu"].connect("ann")
                let bob = try await cluster["us"].connect("bob")
                #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } })
                _ = try await ann.client.send(to: .user("bob"), body: "traced")
                #expect(await bob.inbox.wait { $0.containsMessage("traced") })

                // The send's trace: the gate's span of the `send` request, and every span under it.
                var trace: [Span] = []
                let complete = try await eventually {
                    let spans = Self.spans(in: output)
                    guard let root = spans.first(where: { $0.name == "gate.request" && $0.attributes?["parley.request"] == "send" }) else { return false }
                    trace = spans.filter { $0.trace_id == root.trace_id }
                    let seen = Set(trace.map { "\($0.name)@\($0.region)" })
                    return seen.isSuperset(of: ["gate.request@eu", "logic.request@eu", "logic.commit@eu", "logic.push@eu", "sync.apply@us", "logic.push@us"])
                }
                #expect(complete, "the send's trace: \(trace.map { "\($0.name)@\($0.region)" }.sorted())")
                func one(_ name: String, _ region: String) -> Span? { trace.first { $0.name == name && $0.region == region } }
                if let gate = one("gate.request", "eu"), let request = one("logic.request", "eu"), let commit = one("logic.commit", "eu"),
                   let push = one("logic.push", "eu"), let apply = one("sync.apply", "us"), let farPush = one("logic.push", "us") {
                    #expect(gate.parent_span_id.isEmpty, "the gate's span starts the trace")
                    #expect(request.parent_span_id == gate.span_id, "logic's span is the gate's child, across gRPC")
                    #expect(commit.parent_span_id == request.span_id)
                    #expect(push.parent_span_id == commit.span_id, "the push in eu hangs off the commit")
                    #expect(apply.parent_span_id == commit.span_id, "us's apply hangs off eu's commit, across the replication stream")
                    #expect(farPush.parent_span_id == commit.span_id)
                    #expect(gate.service == "parley-gate" && apply.service == "parley-sync" && farPush.service == "parley-logic")
                }
                // Logs are JSON lines, and logic's line for the send names its trace.
                if let gate = one("gate.request", "eu") {
                    let logs = (0..<2).map { (try? String(contentsOfFile: "\(cluster["eu"].directory)/eu-logic\($0).log", encoding: .utf8)) ?? "" }.joined()
                    let lines = logs.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
                    #expect(!lines.isEmpty && lines.count == logs.split(separator: "\n").count, "every log line is a JSON object of strings")
                    let answered = lines.first { $0["message"] == "answered" && $0["request"] == "send" && $0["trace_id"] == gate.trace_id }
                    #expect(answered != nil, "logic logged the send with its trace id \(gate.trace_id)")
                    #expect(answered?["span_id"] == one("logic.request", "eu")?.span_id)
                }

                // The traceparent stays on the servers: live pushes and sync pages carry none.
                try await bob.client.sync()
                let received = await bob.inbox.received
                #expect(received.contains { $0.event.messagePosted.body == "traced" })
                #expect(received.allSatisfy { $0.event.traceParent.isEmpty }, "no device sees a traceparent")
                for user in [ann, bob] { await user.stop() }
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }
}
