import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyClient
import ParleyCore
import ParleyFault
import ParleyProbe
import ParleyTestSupport
import ParleyTools
import Testing

/// Clients over TLS (docs/PROTOCOL.md, "Transport security"): two regions
/// whose gates have certificates from `parley certs`, and a route that
/// hands out TLS addresses and probes the gates' health over HTTPS.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TLSTests {
    private struct Answer: Decodable {
        struct Region: Decodable { var region: String; var gates: [Gate] }
        struct Gate: Decodable { var tcp: String; var tls: Bool; var webSocket: String; var longPoll: String }
        var regions: [Region]
    }

    private func routed(
        _ user: String, in cluster: LocalCluster, home: String, transport: ParleyClient.Transport, trusting authority: String?
    ) async throws -> TestUser {
        let region = cluster[home]
        var configuration = ParleyClient.Configuration(
            routes: cluster.regions.compactMap(\.file.route), token: try await region.token(for: user), deviceID: "d1"
        )
        configuration.regionHint = home
        configuration.transport = transport
        configuration.certificateAuthority = authority
        configuration.reconnects = false
        let client = ParleyClient(configuration: configuration)
        let inbox = Inbox()
        let reader = Task { await inbox.collect(from: client) }
        do {
            try await client.connect()
        } catch {
            reader.cancel()
            throw error
        }
        return TestUser(id: user, client: client, inbox: inbox, reader: reader)
    }

    @Test func clientsOfEveryTransportChatInTLSAndRouteHandsOutTLSAddresses() async throws {
        try await LocalCluster.with(["eu", "us"], route: .init(), tls: true) { cluster in
            let eu = cluster["eu"]
            // Route probed the gates' health over HTTPS (a region is answered only once it passed).
            var answer: Answer?
            #expect(try await eventually {
                let (data, _) = try await URLSession.shared.data(from: URL(string: "http://\(eu.file.route!)/route?hint=us")!)
                answer = try? JSONDecoder().decode(Answer.self, from: data)
                return answer?.regions.count == 2
            })
            let gate = try #require(answer?.regions.first { $0.region == "us" }?.gates.first)
            #expect(gate.tls && gate.tcp == cluster["us"].file.gates[0].tcp)
            #expect(gate.webSocket == "wss://\(cluster["us"].file.gates[0].webSocket)/ws")
            #expect(gate.longPoll == "https://\(cluster["us"].file.gates[0].webSocket)/lp")

            let authority = eu.certificateAuthority
            let alice = try await routed("alice", in: cluster, home: "eu", transport: .tcp, trusting: authority)
            let bob = try await routed("bob", in: cluster, home: "us", transport: .webSocket, trusting: authority)
            let carol = try await routed("carol", in: cluster, home: "eu", transport: .longPoll, trusting: authority)
            // bob is known in eu once his sign-in in us has replicated.
            #expect(try await eventually { (try? await alice.client.send(to: .user("bob"), body: "over tls to wss")) != nil })
            #expect(await bob.inbox.wait(timeout: .seconds(30)) { $0.containsMessage("over tls to wss") })
            _ = try await bob.client.send(to: .user("carol"), body: "over wss to https")
            #expect(await carol.inbox.wait(timeout: .seconds(30)) { $0.containsMessage("over wss to https") })
            _ = try await carol.client.send(to: .user("alice"), body: "over https to tls")
            #expect(await alice.inbox.wait { $0.containsMessage("over https to tls") })
            for user in [alice, bob, carol] { await user.stop() }
        }
    }

    @Test func aGateIsRefusedByAClientThatDoesNotTrustItsAuthorityAndPlaintextGetsNothing() async throws {
        try await LocalRegion.with(tls: true) { region in
            // Another authority than the one that signed the gate's certificate.
            let stranger = try TestRun.scratch("stranger-ca")
            let (status, output) = try Subprocess.run(LocalRegion.binary, ["certs", "--regions", region.directory, "--out", stranger])
            try #require(status == 0, "\(output)")
            for transport in [Transport.tcp, .webSocket, .longPoll] {
                var configuration = ParleyClient.Configuration(
                    gates: [region.address(transport)], token: try await region.token(for: "mallory"), deviceID: "d1"
                )
                configuration.certificateAuthority = "\(stranger)/ca.pem"
                configuration.reconnects = false
                configuration.signInTimeout = .seconds(5)
                let client = ParleyClient(configuration: configuration)
                do {
                    try await client.connect()
                    Issue.record("\(transport): connected to a gate whose certificate it cannot verify")
                } catch {
                    // Each transport says why: the gate's certificate failed verification.
                    #expect("\(error)".contains("CERTIFICATE_VERIFY_FAILED"), "\(transport): \(error)")
                }
                await client.disconnect()
            }
            // The SDK dialling the TLS port in plaintext says what is wrong.
            var plain = ParleyClient.Configuration(
                gates: [.tcp(host: "127.0.0.1", port: region.tcpPort)], token: try await region.token(for: "alice"), deviceID: "d1"
            )
            plain.reconnects = false
            let plainClient = ParleyClient(configuration: plain)
            do {
                try await plainClient.connect()
                Issue.record("a plaintext client signed in on a TLS port")
            } catch {
                #expect("\(error)".contains("speaks TLS"), "\(error)")
            }
            await plainClient.disconnect()
            // Plaintext on either listener is not TLS: the gate closes the
            // connection without a byte of answer (a timeout would throw).
            for address in [region.file.gates[0].tcp, region.file.gates[0].webSocket] {
                let answer = try await TCPProbe.exchange(
                    address, timeout: .seconds(10), request: "GET /health HTTP/1.1\r\nHost: gate\r\n\r\n", complete: { _ in false }
                )
                #expect(answer.isEmpty, "\(address) answered plaintext with \(Array(answer.utf8.prefix(8)))")
            }
            // The gate serves clients that trust it all the while.
            let alice = try await region.connect("alice")
            let bob = try await region.connect("bob", via: .webSocket)
            _ = try await alice.client.send(to: .user("bob"), body: "still serving")
            #expect(await bob.inbox.wait { $0.containsMessage("still serving") })
            await alice.stop()
            await bob.stop()
        }
    }
}
