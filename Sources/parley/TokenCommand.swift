import ArgumentParser
import ParleyAuth
import ParleyCore

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Issue a signed client token (development)."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "The user the token names.")
    var user: String

    @Option(help: "Lifetime in seconds (negative: already expired, for tests).")
    var ttl: Double = 86_400

    func run() async throws {
        guard Naming.isValid(user) else { throw ValidationError("user ids are 1...64 of [A-Za-z0-9_.]") }
        let authority = try await TokenAuthority(secret: try deployment.tokenSecret)
        print(try await authority.issue(userID: user, lifetime: ttl))
    }
}
