import ParleyAuth
import ParleyFault
import ParleyProbe
import ParleyTestSupport
import Testing

/// The link proxy's admin API answers only the admin token.
@Suite(.timeLimit(.minutes(1))) struct ProxyAdminTests {
    private let token = "the-admin-token-of-this-test"

    @Test func withoutTheAdminTokenTheLinksAreNeitherShownNorChanged() async throws {
        let link = try await FaultProxy.start(name: "eu-us", upstreamHost: "127.0.0.1", upstreamPort: try FreePort.next())
        let port = try FreePort.next()
        let address = "127.0.0.1:\(port)"
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await ProxyAdminServer.run(links: ["eu-us": link], host: "127.0.0.1", port: port, admin: AdminCredential(token: token))
            }
            defer { group.cancelAll() }
            #expect(try await eventually(.seconds(20)) { (try? await TCPProbe.httpGet(address, path: "/links", timeout: .seconds(1))) != nil })

            #expect(try await TCPProbe.httpGet(address, path: "/links", timeout: .seconds(5)).status == 401)
            let put = try await TCPProbe.http(
                "PUT", address, path: "/links/eu-us", headers: [("Content-Type", "application/json")], body: #"{"state":"cut"}"#,
                timeout: .seconds(5)
            )
            #expect(put.status == 401)
            let stranger = ProxyAdmin(address: address, adminToken: "a-guess-at-the-admin-token")
            await #expect { try await stranger.set("eu-us", LinkFaults(state: .cut)) } throws: { error in
                (error as? PeerError)?.kind == .refused(status: 401)
            }
            #expect(link.faults == .healthy, "refused requests change nothing")

            let operatorClient = ProxyAdmin(address: address, adminToken: token)
            #expect(try await operatorClient.links().contains("eu-us"))
            try await operatorClient.set("eu-us", LinkFaults(state: .cut))
            #expect(link.faults.state == .cut)
        }
        await link.stop()
    }
}
