import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import ParleyCore
import ParleyDeployment
import ParleyFault
import ParleyProto
import ParleyRPC
import ParleyTestSupport
import Testing

/// Mutual TLS between a region's processes (docs/ARCHITECTURE.md, "Mutual
/// TLS"): logic and sync take only callers with a certificate of the
/// cluster's authority, and each role only the RPCs it needs.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MutualTLSTests {
    /// A pool calling as `process`, with its certificate from the region's folder.
    private func pool(as process: ProcessName, in region: LocalRegion) throws -> RPCClientPool {
        let folder = try #require(region.security.certificates)
        return RPCClientPool(tls: TLSIdentity(
            certificate: folder.certificate(of: process), privateKey: folder.privateKey(of: process), authority: folder.authority
        ))
    }

    private func code(_ call: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await call()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }

    @Test func eachRoleCallsOnlyItsRPCsAndAStrangerIsRefusedAtTheHandshake() async throws {
        try await LocalRegion.with(tls: true) { region in
            try await region.startSync()
            let (logic, sync) = (region.file.logic[0], region.file.sync)
            let gate = try pool(as: ProcessName(region: "eu", role: .gate, index: 0), in: region)
            let logicInstance = try pool(as: ProcessName(region: "eu", role: .logic, index: 1), in: region)
            let ext = try pool(as: ProcessName(region: "eu", role: .ext, index: 0), in: region)
            let pools = Task { await withDiscardingTaskGroup { group in for pool in [gate, logicInstance, ext] { group.addTask { try? await pool.run() } } } }
            defer { pools.cancel() }
            let options = CallOptions.failFast(timeout: .seconds(10))
            let pull = Parley_PullRequest.with { $0.peer = "mallory"; $0.origins = ["eu"] }
            let awaitStored = Parley_AwaitStoredRequest.with { $0.event = .with { $0.origin = "eu"; $0.seq = 0 } }

            // What each role is for passes.
            let health = try await Parley_Logic.Client(wrapping: gate.client(for: logic)).health(Parley_HealthRequest(), options: options)
            #expect(health.checks["postgres"] == "ok")
            let stored = try await Parley_Sync.Client(wrapping: logicInstance.client(for: sync)).awaitStored(awaitStored, options: options)
            #expect(stored.stored)

            // A gate's certificate cannot pull a region's log, nor wait on sync.
            let gateOnSync = Parley_Sync.Client(wrapping: try gate.client(for: sync))
            #expect(await code { try await gateOnSync.pull(pull, options: options) { response in for try await _ in response.messages { break } } } == .permissionDenied)
            #expect(await code { _ = try await gateOnSync.awaitStored(awaitStored, options: options) } == .permissionDenied)
            // Nor may logic pull the log, nor ext ask logic's health.
            let logicOnSync = Parley_Sync.Client(wrapping: try logicInstance.client(for: sync))
            #expect(await code { try await logicOnSync.pull(pull, options: options) { response in for try await _ in response.messages { break } } } == .permissionDenied)
            let extOnLogic = Parley_Logic.Client(wrapping: try ext.client(for: logic))
            #expect(await code { _ = try await extOnLogic.health(Parley_HealthRequest(), options: options) } == .permissionDenied)

            // A stranger: no certificate, or one of another authority, gets no
            // further than the handshake on either server.
            let stranger = try TestRun.scratch("stranger-ca")
            let (status, output) = try Subprocess.run(LocalRegion.binary, ["certs", "--regions", region.directory, "--out", stranger])
            try #require(status == 0, "\(output)")
            let strangers: [(String, HTTP2ClientTransport.Posix.TransportSecurity)] = [
                ("no certificate", .tls { $0.trustRoots = .certificates([.file(path: region.certificateAuthority!, format: .pem)]) }),
                ("another authority's certificate", .mTLS(
                    certificateChain: [.file(path: "\(stranger)/eu-gate-0.pem", format: .pem)],
                    privateKey: .file(path: "\(stranger)/eu-gate-0.key", format: .pem)
                ) { $0.trustRoots = .certificates([.file(path: region.certificateAuthority!, format: .pem)]) }),
                ("plaintext", .plaintext),
            ]
            for (who, security) in strangers {
                for address in [logic, sync] {
                    let endpoint = try Endpoint(address)
                    try await withGRPCClient(
                        transport: .http2NIOPosix(target: .ipv4(address: endpoint.host, port: endpoint.port), transportSecurity: security)
                    ) { client in
                        let refused = await code { _ = try await Parley_Logic.Client(wrapping: client).health(Parley_HealthRequest(), options: options) }
                        #expect(refused == .unavailable, "\(who) on \(address): \(refused.map { "\($0)" } ?? "answered")")
                    }
                }
            }
        }
    }
}
