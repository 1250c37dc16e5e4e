import Foundation
import ParleyAuth
import ParleyDeployment
import Testing

@Suite struct AdminCredentialTests {
    private let token = "an-operator-token-of-this-deployment"

    @Test func onlyTheBearerTokenItselfIsAdmitted() throws {
        let credential = try AdminCredential(token: token)
        #expect(credential.admits(authorization: "Bearer \(token)"))
        #expect(!credential.admits(authorization: nil))
        #expect(!credential.admits(authorization: ""))
        #expect(!credential.admits(authorization: token), "the scheme is required")
        #expect(!credential.admits(authorization: "Basic \(token)"))
        #expect(!credential.admits(authorization: "Bearer \(token.dropLast())"), "a prefix is not the token")
        #expect(!credential.admits(authorization: "Bearer \(token)x"))
        #expect(!credential.admits(authorization: "Bearer  \(token)"))
    }

    @Test func aShortTokenIsRefused() {
        #expect(throws: AdminCredentialError.tokenTooShort) { _ = try AdminCredential(token: "short") }
    }

    @Test func theCommittedDevelopmentTokenIsFlaggedOffLoopbackOnly() {
        let dev = AdminCredential.developmentToken
        #expect(AdminCredential.developmentTokenWarning(token: dev, listeningOn: ["127.0.0.1", "localhost", "::1"]) == nil)
        let exposed = AdminCredential.developmentTokenWarning(token: dev, listeningOn: ["0.0.0.0"])
        #expect(exposed?.contains("0.0.0.0") == true && exposed?.contains("PARLEY_ADMIN_TOKEN") == true)
        #expect(AdminCredential.developmentTokenWarning(token: token, listeningOn: ["0.0.0.0"]) == nil)
    }

    @Test func theCommittedClusterFileUsesTheDevelopmentToken() throws {
        // The constant and the file must agree, or the warning never fires.
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../regions/cluster.json")
        let cluster = try ClusterFile.decode(Array(Data(contentsOf: file)))
        #expect(cluster.adminToken == AdminCredential.developmentToken)
    }

    @Test func theEnvironmentOverridesTheFileAndNeitherIsAnError() throws {
        var cluster = ClusterFile(regions: ["eu"], tokenSecret: "s", adminToken: "from-the-cluster-file")
        #expect(try cluster.resolvedAdminToken(environment: [:]) == "from-the-cluster-file")
        #expect(try cluster.resolvedAdminToken(environment: ["PARLEY_ADMIN_TOKEN": "from-the-environment"]) == "from-the-environment")
        cluster.adminToken = nil
        #expect(throws: RegionFileError.self) { _ = try cluster.resolvedAdminToken(environment: [:]) }
    }
}
