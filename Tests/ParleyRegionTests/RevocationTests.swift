import Foundation
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import Testing

/// Signing a device, or every device, out (docs/PROTOCOL.md, "Sessions and
/// tokens"): the tokens issued until then are refused in every region, and
/// the connections signed in with them are closed.
@Suite(.serialized, .timeLimit(.minutes(4))) struct RevocationTests {
    @Test func aRevokedTokenIsRefusedEverywhereAndItsOpenConnectionsAreClosed() async throws {
        try await LocalCluster.with(["eu", "us"]) { cluster in
            let eu = cluster["eu"], us = cluster["us"]
            func client(_ region: LocalRegion, device: String, token: String) async throws -> ParleyClient {
                var configuration = ParleyClient.Configuration(gates: [region.address(.tcp)], token: token, deviceID: device)
                configuration.reconnects = false
                let client = ParleyClient(configuration: configuration)
                try await client.connect()
                return client
            }
            func closed(_ client: ParleyClient, with code: ClientErrorCode) async throws -> Bool {
                try await eventually(.seconds(30)) {
                    let error = await client.lastServerError?.code
                    let open = await client.isConnected
                    return error == code && !open
                }
            }
            func signInRefusal(_ region: LocalRegion, device: String, token: String) async -> ClientErrorCode? {
                do {
                    let late = try await client(region, device: device, token: token)
                    await late.disconnect()
                    return nil
                } catch let error as ClientError {
                    return error.code
                } catch {
                    return nil
                }
            }
            let before = try await eu.token(for: "alice")
            let phone = try await client(eu, device: "phone", token: before)
            let laptop = try await client(eu, device: "laptop", token: before)
            let tablet = try await client(us, device: "tablet", token: before)

            // The phone signs the laptop out: only the laptop's connection ends, with 18.
            _ = try await phone.revokeTokens(device: "laptop")
            #expect(try await closed(laptop, with: .tokenRevoked), "the laptop is closed with token_revoked")
            let (phoneOpen, tabletOpen) = (await phone.isConnected, await tablet.isConnected)
            #expect(phoneOpen && tabletOpen)
            #expect(await signInRefusal(eu, device: "laptop", token: before) == .tokenRevoked, "its old token is refused")
            #expect(await signInRefusal(eu, device: "desk", token: before) == nil, "on other devices it still works")
            // A token issued since signs the laptop in again.
            let issuedSince = Date()
            let since = try await TokenAuthority(secret: eu.tokenSecret).issue(userID: "alice", lifetime: 3600, now: issuedSince)
            let laptopAgain = try await client(eu, device: "laptop", token: since)
            // Revocations cover tokens issued before them: the next one comes after `since` was.
            #expect(try await eventually { Date().timeIntervalSince(issuedSince) > 0.005 })

            // The phone signs every device out: in the other region too, once the revocation arrives there.
            _ = try await phone.revokeTokens()
            #expect(try await closed(tablet, with: .tokenRevoked), "us closes alice's tablet")
            #expect(try await closed(phone, with: .tokenRevoked), "the phone signed itself out too")
            #expect(try await closed(laptopAgain, with: .tokenRevoked), "a token issued between the two is revoked by the second")
            #expect(await signInRefusal(us, device: "tablet", token: before) == .tokenRevoked)
            #expect(await signInRefusal(us, device: "phone", token: since) == .tokenRevoked)
            // On an open connection, a revoked token offered as a fresh one is refused and changes nothing.
            let fresh = try await TokenAuthority(secret: eu.tokenSecret).issue(userID: "alice", lifetime: 3600)
            let signedBackIn = try await client(us, device: "tablet", token: fresh)
            await #expect { try await signedBackIn.request(.with { $0.auth = .with { $0.token = before } }) } throws: { error in
                (error as? ClientError)?.code == .tokenRevoked
            }
            let stillOpen = await signedBackIn.isConnected
            #expect(stillOpen)
            await signedBackIn.disconnect()
        }
    }
}
