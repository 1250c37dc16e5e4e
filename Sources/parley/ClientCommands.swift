import ArgumentParser
import Foundation
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyDeployment
import ParleyLogic
import ParleyTools

/// Which gate a client command talks to.
struct GateChoice: ParsableArguments {
    @Option(help: "Transport: tcp, ws (WebSocket) or longpoll (HTTP long-poll).")
    var transport = "tcp"

    @Option(help: "Gate index in the region file.")
    var gate = 0

    func address(in region: RegionFile, security: LinkSecurity) throws -> GateAddress {
        guard region.gates.indices.contains(gate) else { throw ValidationError("no gate \(gate) in \(region.name)") }
        return try Self.address(region.gates[gate], transport: transport, security: security)
    }

    static func address(_ gate: RegionFile.Gate, transport: String, security: LinkSecurity) throws -> GateAddress {
        switch transport {
        case "tcp":
            guard let address = GateAddress(tcp: gate.tcp, tls: security.isTLS) else { throw ValidationError("bad tcp address \(gate.tcp)") }
            return address
        case "ws":
            return .webSocket(url: security.webSocketURL(gate))
        case "longpoll":
            return .longPoll(url: security.longPollURL(gate))
        default:
            throw ValidationError("transport is tcp, ws or longpoll")
        }
    }
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run the scripted chat demo against a running region; exit 1 if anything is lost or doubled."
    )

    @OptionGroup var deployment: DeploymentOptions

    func run() async throws {
        let (region, _) = try deployment.load()
        let gate = region.gates[0]
        let security = try deployment.security
        // With several regions, the demo also writes across them.
        let remote = try deployment.peers().first.map { peer in
            (region: peer.name, gate: try GateChoice.address(peer.gates[0], transport: "tcp", security: security))
        }
        var demo = Demo(
            tcp: try GateChoice.address(gate, transport: "tcp", security: security),
            webSocket: try GateChoice.address(gate, transport: "ws", security: security),
            tokenSecret: try deployment.tokenSecret,
            remote: remote,
            say: { print($0) }
        )
        demo.longPoll = try GateChoice.address(gate, transport: "longpoll", security: security)
        demo.certificateAuthority = security.certificates?.authority
        if let address = region.ext?.platform, address != "none", let (service, token) = region.ext?.serviceTokens?.min(by: { $0.key < $1.key }) {
            demo.platform = (url: "http://\(address)/v1", service: service, token: token)
        }
        do {
            try await demo.run()
        } catch let failure as Demo.Failure {
            print(failure.description)
            throw ExitCode(1)
        }
    }
}

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Chat from the terminal as a user, with a user (--to) or a group (--group)."
    )

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var choice: GateChoice

    @Option(help: "Who you are.") var user: String
    @Option(help: "Chat with this user.") var to: String?
    @Option(help: "Chat in this group.") var group: String?
    @Option(help: "This device's id.") var device = "terminal"

    func run() async throws {
        let (region, _) = try deployment.load()
        let recipient: ParleyClient.Recipient
        switch (to, group) {
        case (let user?, nil): recipient = .user(user)
        case (nil, let group?): recipient = .group(group)
        default: throw ValidationError("give exactly one of --to and --group")
        }
        let authority = try await TokenAuthority(secret: try deployment.tokenSecret)
        let security = try deployment.security
        var configuration = ParleyClient.Configuration(
            gates: [try choice.address(in: region, security: security)], token: try await authority.issue(userID: user, lifetime: 86_400),
            deviceID: device
        )
        configuration.certificateAuthority = security.certificates?.authority
        // A chat left open for a day signs itself in again rather than being closed.
        configuration.freshToken = { [user] in try await authority.issue(userID: user, lifetime: 86_400) }
        let client = ParleyClient(configuration: configuration)
        let (lines, input) = AsyncStream<String>.makeStream()
        let reader = Thread {
            while let line = readLine() { input.yield(line) }
            input.finish()
        }
        reader.start()
        try await Chat(client: client, recipient: recipient).run(lines: lines) { print($0) }
    }
}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Drive N clients against a running region; report msgs/s and latency percentiles."
    )

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var choice: GateChoice

    @Option(help: "Clients (pairs chatting with each other).") var clients = 100
    @Option(help: "Measured seconds.") var seconds = 20
    @Option(help: "Warm-up seconds, not measured.") var warmup = 3
    @Option(help: "Sends in flight per client.") var window = 1
    @Option(help: "Receivers connect to this region's gates (cross-region visibility); default: the same region.")
    var receiveRegion: String?
    @Option(help: "Total sends per second, paced; default: as fast as acks return.") var rate: Int?
    @Option(help: "Send durability: default, local or geo.") var durability = "default"

    func run() async throws {
        let (region, _) = try deployment.load()
        let security = try deployment.security
        let gates = try region.gates.map { try GateChoice.address($0, transport: choice.transport, security: security) }
        var options = Bench.Options(
            gates: gates, tokenSecret: try deployment.tokenSecret, clients: clients,
            seconds: seconds, warmupSeconds: warmup, window: window
        )
        options.certificateAuthority = security.certificates?.authority
        if let receiveRegion {
            guard let peer = try deployment.peers().first(where: { $0.name == receiveRegion }) else {
                throw ValidationError("no region \(receiveRegion) in the cluster")
            }
            options.receiverGates = try peer.gates.map { try GateChoice.address($0, transport: choice.transport, security: security) }
        }
        options.rate = rate
        switch durability {
        case "default": options.durability = .default
        case "local": options.durability = .local
        case "geo": options.durability = .geo
        default: throw ValidationError("durability is default, local or geo")
        }
        let bench = Bench(options: options)
        print(try await bench.run())
    }
}

struct SocialBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-social",
        abstract: "Measure the conversation list, member-list paging and sends mixed with receipts and typing (ops/bench)."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Conversations of the listing user.") var conversations = 1_000
    @Option(help: "Listings measured per page size.") var listings = 300
    @Flag(help: "Also page the members of the group `parley fill --group-members` made.") var bigGroup = false
    @Option(help: "Clients of the mixed-traffic runs.") var clients = 50
    @Option(help: "Seconds of each mixed-traffic run.") var seconds = 10

    func run() async throws {
        let (region, _) = try deployment.load()
        let security = try deployment.security
        var options = SocialBench.Options(
            gates: try region.gates.map { try GateChoice.address($0, transport: "tcp", security: security) }, tokenSecret: try deployment.tokenSecret
        )
        options.certificateAuthority = security.certificates?.authority
        options.conversations = conversations
        options.listings = listings
        options.clients = clients
        options.seconds = seconds
        if bigGroup { options.bigGroup = (SyntheticFill.bigGroupMember(region: region.name), SyntheticFill.bigGroupID(region: region.name)) }
        try await SocialBench(options: options).run { print($0) }
    }
}
