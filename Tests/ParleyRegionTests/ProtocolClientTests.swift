import Foundation
import ParleyTestSupport
import Testing

/// A client written from docs/PROTOCOL.md alone (Python, protobuf encoded by
/// hand, Tests/protocol-client/) against a region really running, in TLS
/// as a deployment runs it.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ProtocolClientTests {
    @Test func aClientWrittenFromTheProtocolPageAloneGetsWhatThePagePromises() async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../protocol-client/parley_protocol_client.py").standardized.path
        // A short recall window, so the client sees its error (34) in a moment; a typing
        // interval long enough that its repeated notice is refused (35) however loaded the machine;
        // groups of at most 3, so it sees group_full (26) with the two users it has.
        // A device may make 300 requests at once, then 2 a second: the client's own devices stay
        // within it, and its flood of 400 sends goes over it however long the machine takes.
        let limits = ["--recall-window-ms=1000", "--typing-interval-ms=60000", "--max-group-members=3"]
        let gateLimits = ["--device-requests-per-second=2", "--device-request-burst=300"]
        try await LocalRegion.with(gateArguments: gateLimits, logicArguments: limits, tls: true) { region in
            try await region.startExt(0)
            let log = "\(region.directory)/protocol-client.log"
            let client = try ChildProcess(
                name: "protocol-client", executable: "/usr/bin/python3",
                arguments: [
                    script, "127.0.0.1", "\(region.tcpPort)", try await region.token(for: "alice"), try await region.token(for: "bob"),
                    region.platformURL, LocalRegion.serviceTokens["orders"]!, region.longPollURL,
                ],
                logPath: log,
                environment: ProcessInfo.processInfo.environment.merging(["PARLEY_CA_FILE": region.certificateAuthority!]) { $1 }
            )
            // It prints one JSON line when done, passed or not.
            #expect(try await eventually(.seconds(120)) { client.log.contains("\"ok\"") }, "\(client.log)")
            #expect(client.log.contains("\"ok\": true") && client.log.contains("\"noticeFrom\": \"~orders\"")
                    && client.log.contains("\"longPoll\": \"ok\"") && client.log.contains("\"socialChecked\": true")
                    && client.log.contains("\"messagesChecked\": true") && client.log.contains("\"rateLimited\": ")
                    && client.log.contains("\"revokedCode\": 18"), "\(client.log)")
            await client.stop()
        }
    }
}
