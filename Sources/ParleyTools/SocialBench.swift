import Histogram
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
import Synchronization

/// `parley bench-social`: the chat-feature rows of ops/bench
/// (docs/BENCHMARKS.md, "Chat features"): the conversation list of a user
/// with many conversations, paging the member list of a large group, and the
/// send rate with read receipts and typing notices mixed in.
public struct SocialBench: Sendable {
    public struct Options: Sendable {
        public var gates: [GateAddress]
        public var tokenSecret: String
        /// The authority TLS gates' certificates chain to (nil: the system's).
        public var certificateAuthority: String?
        /// Conversations of the listing user.
        public var conversations = 1_000
        /// Listings measured.
        public var listings = 300
        /// A member of the large group (`parley fill --group-members`), and its id.
        public var bigGroup: (member: String, groupID: String)?
        /// Clients of the mixed-traffic run (pairs).
        public var clients = 50
        public var seconds = 10

        public init(gates: [GateAddress], tokenSecret: String) {
            self.gates = gates
            self.tokenSecret = tokenSecret
        }
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    /// Runs every row and returns the report's lines.
    public func run(print: @Sendable (String) -> Void) async throws {
        let authority = try await TokenAuthority(secret: options.tokenSecret)
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try await conversationList(authority, run, print)
        if let big = options.bigGroup { try await memberPages(authority, big, print) }
        for mix in [false, true] { try await mixedSends(authority, run, mixed: mix, print) }
    }

    private func client(_ authority: TokenAuthority, _ user: String) async throws -> ParleyClient {
        var configuration = ParleyClient.Configuration(gates: options.gates, token: try await authority.issue(userID: user, lifetime: 3600), deviceID: "bench")
        configuration.reconnects = false
        configuration.certificateAuthority = options.certificateAuthority
        let client = ParleyClient(configuration: configuration)
        try await client.connect()
        return client
    }

    /// A user in `conversations` groups, each with one message from its other
    /// member (so each has a preview and an unread count); then the list, whole
    /// and first page of 50, asked `listings` times each.
    private func conversationList(_ authority: TokenAuthority, _ run: String, _ print: @Sendable (String) -> Void) async throws {
        let owner = try await client(authority, "list\(run)")
        let peer = try await client(authority, "peer\(run)")
        let setupStarted = ContinuousClock.now
        let total = options.conversations
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for index in stride(from: worker, to: total, by: 32) {
                        let created = try await owner.createGroup(name: "conversation \(index)", members: ["peer\(run)"], clientGroupID: "c\(index)")
                        _ = try await peer.send(to: .group(created.groupID), body: "message in conversation \(index)")
                    }
                }
            }
            try await group.waitForAll()
        }
        print("conversation list: \(total) conversations set up in \(Self.ms(ContinuousClock.now - setupStarted)) ms")
        for limit in [UInt32(total), 50] {
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var count = 0
            for _ in 0..<options.listings {
                let started = ContinuousClock.now
                count = try await owner.conversations(limit: limit).conversations.count
                _ = histogram.record(Self.micros(ContinuousClock.now - started))
            }
            print("conversation list, \(count) of \(total) per answer: \(Self.percentiles(histogram)) over \(options.listings) listings")
        }
        await owner.disconnect()
        await peer.disconnect()
    }

    /// Every page of the large group's members, at two page sizes.
    private func memberPages(_ authority: TokenAuthority, _ big: (member: String, groupID: String), _ print: @Sendable (String) -> Void) async throws {
        let member = try await client(authority, big.member)
        for limit in [UInt32(200), 1_000] {
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            let started = ContinuousClock.now
            var after = ""
            var seen = 0
            var pages = 0
            repeat {
                let pageStarted = ContinuousClock.now
                let page = try await member.members(of: big.groupID, after: after, limit: limit)
                _ = histogram.record(Self.micros(ContinuousClock.now - pageStarted))
                seen += page.members.count
                pages += 1
                guard page.more, let last = page.members.last else { break }
                after = last.userID
            } while true
            print("member list of \(seen) members, pages of \(limit): \(pages) pages in \(Self.ms(ContinuousClock.now - started)) ms, per page \(Self.percentiles(histogram))")
        }
        await member.disconnect()
    }

    /// Pairs sending to each other as fast as acks return; with `mixed`, each
    /// client also marks what it received read after every message and says
    /// it is typing (then not) before every other send.
    private func mixedSends(_ authority: TokenAuthority, _ run: String, mixed: Bool, _ print: @Sendable (String) -> Void) async throws {
        let count = options.clients + options.clients % 2
        var clients: [ParleyClient] = []
        for index in 0..<count { clients.append(try await client(authority, "mix\(run)\(mixed ? "m" : "p")_\(index)")) }
        let tally = Tally()
        let deadline = ContinuousClock.now + .seconds(options.seconds)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                let partner = "mix\(run)\(mixed ? "m" : "p")_\(index ^ 1)"
                let conversation = ConversationID.direct("mix\(run)\(mixed ? "m" : "p")_\(index)", partner)
                group.addTask {
                    var round = 0
                    while ContinuousClock.now < deadline {
                        round += 1
                        do {
                            if mixed, round % 2 == 0 {
                                try await client.typing(in: conversation, round % 4 == 0)
                                tally.count { $0.typing += 1 }
                            }
                            let sent = ContinuousClock.now
                            let ack = try await client.send(to: .user(partner), body: "round \(round)")
                            tally.record(Self.micros(ContinuousClock.now - sent))
                            tally.count { $0.sends += 1 }
                            if mixed {
                                // A receipt for the conversation's newest message: the reader's marker moves.
                                _ = try await client.markRead(conversationID: conversation, messageID: ack.messageID)
                                tally.count { $0.reads += 1 }
                            }
                        } catch {
                            tally.count { $0.errors += 1 }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
            + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
        let (done, histogram) = tally.totals
        let rate = { (n: Int) in Int(Double(n) / seconds) }
        print("""
            sends \(mixed ? "with receipts and typing" : "alone"), \(count) clients: \(rate(done.sends)) sends/s, \
            \(rate(done.reads)) receipts/s, \(rate(done.typing)) typing notices/s, \(done.errors) errors; send→ack \(Self.percentiles(histogram))
            """)
        for client in clients { await client.disconnect() }
    }

    /// What the mixed-traffic clients did, counted across their tasks.
    private final class Tally: Sendable {
        struct Counts { var sends = 0, reads = 0, typing = 0, errors = 0 }
        private let counts = Mutex(Counts())
        private let latencies = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))

        func count(_ change: (inout Counts) -> Void) { counts.withLock { change(&$0) } }
        func record(_ micros: UInt64) { latencies.withLock { _ = $0.record(micros) } }
        var totals: (Counts, Histogram<UInt64>) { (counts.withLock { $0 }, latencies.withLock { $0 }) }
    }

    private static func micros(_ duration: Duration) -> UInt64 {
        UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
    }

    private static func ms(_ duration: Duration) -> String { String(format2: Double(micros(duration)) / 1000) }

    private static func percentiles(_ histogram: Histogram<UInt64>) -> String {
        let at = { (p: Double) in String(format2: Double(histogram.valueAtPercentile(p)) / 1000) }
        return "p50 \(at(50)) ms, p99 \(at(99)) ms, max \(String(format2: Double(histogram.max) / 1000)) ms"
    }
}
