import Foundation
import ParleyFuzzTargets
import ParleyProto
import ParleyWire
import Testing

/// The fuzz targets' committed corpus (Fuzz/Corpus/<target>/), replayed
/// through the targets' own code on every test run: the seeds decode as
/// documented, and any input ops/fuzz ever found a crash with, kept there,
/// stays a regression test (a crash would stop this process).
struct FuzzCorpusTests {
    private static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fuzz/Corpus").standardized.path

    private func inputs(_ target: String) throws -> [String: [UInt8]] {
        let folder = "\(Self.corpus)/\(target)"
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        return try Dictionary(uniqueKeysWithValues: names.map { name in
            (name, Array(try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)"))))
        })
    }

    @Test func theTCPStreamCorpus() throws {
        let inputs = try inputs("FrameStream")
        var outcomes: [String: FuzzTargets.Outcome] = [:]
        for (name, bytes) in inputs { outcomes[name] = bytes.withUnsafeBytes { FuzzTargets.frameStream($0) } }
        for seed in ["seed-auth", "seed-send", "seed-sync", "seed-heartbeat", "seed-revoke"] {
            #expect(outcomes[seed]?.frames.count == 1 && outcomes[seed]?.stoppedBy == nil, "\(seed)")
        }
        #expect(outcomes["seed-send"]?.frames.first?.send.body == "hello 👋")
        #expect(outcomes["seed-unknown-body"]?.stoppedBy == .unknownType)
        // Five frames the gate serves, then the unknown body that ends the connection.
        #expect(outcomes["seed-pipelined"]?.frames.count == 5 && outcomes["seed-pipelined"]?.stoppedBy == .unknownType)
        #expect(outcomes["seed-cut-short"]?.frames.isEmpty == true && outcomes["seed-cut-short"]?.stoppedBy == nil)
        #expect(outcomes["seed-over-the-limit"]?.stoppedBy == .tooLarge(length: 65 * 1024, limit: FuzzTargets.maxFrameSize))
    }

    @Test func theFrameCorpus() throws {
        let inputs = try inputs("FrameMessage")
        var results: [String: Result<Parley_Frame, FrameError>] = [:]
        for (name, bytes) in inputs { results[name] = bytes.withUnsafeBytes { FuzzTargets.frameMessage($0) } }
        #expect((try? results["seed-auth"]?.get())?.auth.deviceID == "phone")
        #expect((try? results["seed-sync"]?.get())?.sync.cursor.count == 2)
        if case .failure(let error) = results["seed-unknown-body"] { #expect(error == .unknownType) } else { Issue.record("an unknown body decoded") }
    }

    @Test func theJSONCorpus() throws {
        let inputs = try inputs("FrameJSON")
        var results: [String: Result<Parley_Frame, FrameError>] = [:]
        for (name, bytes) in inputs { results[name] = bytes.withUnsafeBytes { FuzzTargets.frameJSON($0) } }
        let send = try? results["seed-send"]?.get()
        #expect(send?.requestID == 2 && send?.send.body == "hello 👋" && send?.send.durability == .geo, "\(String(describing: send))")
        #expect((try? results["seed-auth"]?.get())?.auth.session.first?.seq == 7)
        if case .failure(let error) = results["seed-unknown-body"] { #expect(error == .unknownType) } else { Issue.record("an unknown body decoded") }
        if case .failure(let error) = results["seed-not-a-frame"] { #expect(error == .malformed) } else { Issue.record("not a frame decoded") }
    }

    @Test func theWebSocketCorpus() throws {
        let inputs = try inputs("WebSocket")
        var outcomes: [String: FuzzTargets.Outcome] = [:]
        for (name, bytes) in inputs { outcomes[name] = bytes.withUnsafeBytes { FuzzTargets.webSocket($0) } }
        for seed in ["seed-send", "seed-fragmented", "seed-ping-then-send"] {
            #expect(outcomes[seed]?.frames.first?.send.body == "hello 👋" && outcomes[seed]?.stoppedBy == nil, "\(seed)")
        }
        #expect(outcomes["seed-text"]?.stoppedBy == .malformed, "a text message is not a frame")
        #expect(outcomes["seed-close"]?.frames.isEmpty == true && outcomes["seed-close"]?.stoppedBy == nil)
    }
}
