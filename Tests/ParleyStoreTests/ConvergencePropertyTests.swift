import Logging
import ParleyCore
import ParleyProto
import ParleyTestSupport
import Testing

@testable import ParleyStore

/// The convergence rules proved on the production path: the random histories
/// of the core's property test, applied through a real store and PostgreSQL
/// in two different causal orders and batchings, leave identical rows and
/// identical checker digests, and the rows are the ones the core model
/// (`ConvergentState`) derives.
@Suite struct ConvergencePropertyTests {
    private static let template = "converge_template"

    @Test func randomHistoriesThroughTheRealStoreGiveIdenticalStateInAnyOrderAndBatching() async throws {
        let server = try await PostgresServer.start(name: "converge-postgres")
        do {
            try await prepareTemplate(server)
            for seed in 0..<40 as Range<UInt64> {
                try await check(seed: seed, server)
            }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    private func check(seed: UInt64, _ server: PostgresServer) async throws {
        var rng = SplitMix64(seed: seed)
        let history = RandomHistory.generate(events: 120, using: &rng)
        var model = ConvergentState()
        history.events.forEach { model.apply($0) }
        var dumps: [String] = []
        var digests: [String] = []
        // One region receives small batches, the other large ones, each in its own causal order.
        for (run, maxBatch) in [(0, 3), (1, 40)] {
            let database = "converge_\(seed)_\(run)"
            _ = try server.psql("CREATE DATABASE \(database) TEMPLATE \(Self.template)")
            let store = RegionStore(
                postgres: PostgresLocation(host: "127.0.0.1", port: server.port, database: database, password: server.password),
                origin: "zz", clock: HybridLogicalClock(), logger: Logger(label: database)
            )
            let runner = Task { await store.run() }
            do {
                let delivery = history.causalDelivery(using: &rng)
                for batch in RandomHistory.batches(delivery, maxBatch: maxBatch, using: &rng) {
                    try await store.applyReplicated(batch.map(\.wire))
                }
                #expect(try await store.appliedVector() == VersionVector(["eu": count("eu", history), "us": count("us", history), "ap": count("ap", history)]))
            } catch {
                runner.cancel()
                throw error
            }
            runner.cancel()
            dumps.append(try server.psql(Self.rowsDump, database: database))
            digests.append(try server.psql(Self.digestsDump, database: database))
        }
        #expect(dumps[0] == dumps[1], "seed \(seed): the same rows whatever the order and batching")
        #expect(digests[0] == digests[1], "seed \(seed): the checker's digests agree")
        #expect(!digests[0].isEmpty)
        let registers = dumps[0].split(separator: "\n").filter { !$0.hasPrefix("conv|d:") && !$0.hasPrefix("member|d:") }
        #expect(registers == Self.render(model), "seed \(seed): the store holds what the core's rules derive")
    }

    private func count(_ origin: String, _ history: RandomHistory) -> UInt64 {
        UInt64(history.events.filter { $0.id.origin == origin }.count)
    }

    /// A migrated database to copy for each run (CREATE DATABASE … TEMPLATE),
    /// instead of migrating eighty.
    private func prepareTemplate(_ server: PostgresServer) async throws {
        _ = try server.psql("CREATE DATABASE \(Self.template)")
        let store = RegionStore(
            postgres: PostgresLocation(host: "127.0.0.1", port: server.port, database: Self.template, password: server.password),
            origin: "zz", clock: HybridLogicalClock(), logger: Logger(label: Self.template)
        )
        let runner = Task { await store.run() }
        do { try await store.prepare() } catch {
            runner.cancel()
            throw error
        }
        runner.cancel()
        await runner.value
        // A template must have no sessions; the pool closes its connections as it stops.
        let deadline = ContinuousClock.now + .seconds(30)
        while try server.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '\(Self.template)'") != "0" {
            try #require(ContinuousClock.now < deadline, "the template database kept its sessions")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Every derived row a convergence rule decides, one line each, sorted.
    private static let rowsDump = """
        SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
          SELECT concat_ws('|', 'msg', origin, seq, conversation_id, hlc, sender, body, client_msg_id, recalled, edit_hlc, edit_origin) AS line FROM messages
          UNION ALL SELECT concat_ws('|', 'client', sender, client_msg_id, origin, seq, hlc) FROM client_messages
          UNION ALL SELECT concat_ws('|', 'conv', conversation_id, is_group, name, owner, hlc, origin) FROM conversations
          UNION ALL SELECT concat_ws('|', 'member', conversation_id, user_id, present, hlc, origin) FROM members
          UNION ALL SELECT concat_ws('|', 'profile', user_id, field, value, hlc, origin) FROM profiles
          UNION ALL SELECT concat_ws('|', 'setting', user_id, key, value, hlc, origin) FROM user_settings
          UNION ALL SELECT concat_ws('|', 'read', conversation_id, user_id, hlc, origin, seq) FROM read_markers
          UNION ALL SELECT concat_ws('|', 'register', conversation_id, subject, name, value, hlc, origin) FROM registers
          UNION ALL SELECT concat_ws('|', 'hidden', user_id, origin, seq, conversation_id) FROM hidden_messages
          UNION ALL SELECT concat_ws('|', 'activity', conversation_id, hlc, origin, seq) FROM conversation_activity
        ) rows
        """

    /// What `parley check` compares: the log buckets and per-conversation digests.
    private static let digestsDump = """
        SELECT concat_ws(' / ',
          (SELECT string_agg(concat_ws(',', origin, bucket, digest, events), ';' ORDER BY origin, bucket) FROM log_buckets WHERE events <> 0),
          (SELECT string_agg(concat_ws(',', conversation_id, log_digest, log_events, state_digest), ';' ORDER BY conversation_id)
             FROM conversation_digests WHERE log_events <> 0 OR state_digest <> 0))
        """

    /// The model's state in `rowsDump`'s form, without the fixed rows of
    /// direct conversations (facts the store adds, not rules).
    private static func render(_ state: ConvergentState) -> [Substring] {
        func text(_ flag: Bool) -> String { flag ? "t" : "f" }  // PostgreSQL's boolean output
        var lines: [String] = []
        for (id, m) in state.messages {
            lines.append(["msg", id.origin, "\(id.seq)", m.conversation, "\(m.order.hlc.rawValue)", m.sender, m.body, m.clientMsgID,
                          text(m.recalled), "\(m.edit?.hlc.rawValue ?? 0)", m.edit?.origin ?? ""].joined(separator: "|"))
        }
        for (key, w) in state.clientWinners {
            lines.append(["client", key.sender, key.clientMsgID, w.id.origin, "\(w.id.seq)", "\(w.stamp.hlc.rawValue)"].joined(separator: "|"))
        }
        for (id, g) in state.groups {
            lines.append(["conv", id, "t", g.name, g.owner, "\(g.stamp.hlc.rawValue)", g.stamp.origin].joined(separator: "|"))
        }
        for (key, r) in state.membership {
            lines.append(["member", key.owner, key.name, text(r.value), "\(r.stamp.hlc.rawValue)", r.stamp.origin].joined(separator: "|"))
        }
        for (key, r) in state.profiles {
            lines.append(["profile", key.owner, key.name, r.value, "\(r.stamp.hlc.rawValue)", r.stamp.origin].joined(separator: "|"))
        }
        for (key, r) in state.settings {
            lines.append(["setting", key.owner, key.name, r.value, "\(r.stamp.hlc.rawValue)", r.stamp.origin].joined(separator: "|"))
        }
        for (key, r) in state.registers {
            lines.append(["register", key.conversation, key.subject, key.name, r.value, "\(r.stamp.hlc.rawValue)", r.stamp.origin]
                .joined(separator: "|"))
        }
        for hidden in state.hiddenFor {
            lines.append(["hidden", hidden.user, hidden.message.origin, "\(hidden.message.seq)", hidden.conversation].joined(separator: "|"))
        }
        for (conversation, o) in state.activity {
            lines.append(["activity", conversation, "\(o.hlc.rawValue)", o.origin, "\(o.seq)"].joined(separator: "|"))
        }
        for (key, o) in state.readMarkers {
            lines.append(["read", key.conversationID, key.userID, "\(o.hlc.rawValue)", o.origin, "\(o.seq)"].joined(separator: "|"))
        }
        return lines.sorted().map { Substring($0) }
    }
}

extension ReplicatedEvent {
    /// The event as a peer region would send it.
    var wire: Parley_Event {
        .with { event in
            event.origin = id.origin
            event.seq = id.seq
            event.hlc = hlc.rawValue
            event.deps = deps.entries
            switch body {
            case .groupCreated(let group, let name, let owner, let members):
                event.groupCreated = .with { $0.groupID = group; $0.name = name; $0.owner = owner; $0.members = members }
            case .memberAdded(let group, let member):
                event.memberAdded = .with { $0.groupID = group; $0.userID = member }
            case .memberRemoved(let group, let member):
                event.memberRemoved = .with { $0.groupID = group; $0.userID = member }
            case .messagePosted(let conversation, let sender, let clientMsgID, let body):
                event.messagePosted = .with {
                    $0.messageID = id.description; $0.conversationID = conversation; $0.sender = sender
                    $0.clientMsgID = clientMsgID; $0.body = body
                }
            case .messageEdited(let target, let body):
                event.messageEdited = .with { $0.messageID = target.description; $0.body = body }
            case .messageRecalled(let target):
                event.messageRecalled = .with { $0.messageID = target.description }
            case .readMoved(let conversation, let reader, let upTo):
                event.readMoved = .with { $0.conversationID = conversation; $0.reader = reader; $0.messageID = upTo.description }
            case .profileSet(let user, let field, let value):
                event.profileSet = .with { $0.userID = user; $0.field = field; $0.value = value }
            case .settingSet(let user, let key, let value):
                switch UserSetting(key: key) {
                case .pushToken(let device):
                    event.pushRegistered = .with { $0.userID = user; $0.deviceID = device; $0.token = value }
                case .muted(let conversation):
                    event.conversationMuted = .with { $0.userID = user; $0.conversationID = conversation; $0.muted = !value.isEmpty }
                case .remark(let peer):
                    event.remarkSet = .with { $0.userID = user; $0.peer = peer; $0.remark = value }
                case .pinned(let conversation):
                    event.conversationPinned = .with { $0.userID = user; $0.conversationID = conversation; $0.pinned = !value.isEmpty }
                case .tokensRevoked(let device):
                    event.tokensRevoked = .with { $0.userID = user; $0.deviceID = device; $0.beforeMs = UInt64(value) ?? 0 }
                case nil:
                    preconditionFailure("not a setting key: \(key)")
                }
            case .registerSet(let key, let value):
                event.setRegister(key, value)
            case .messageHidden(let user, let target, let conversation):
                event.messageDeleted = .with { $0.userID = user; $0.messageID = target.description; $0.conversationID = conversation }
            }
        }
    }
}

extension Parley_Event {
    /// The event that writes `value` to the register `key` (RandomHistory's kinds).
    mutating func setRegister(_ key: RegisterKey, _ value: String) {
        let users = ConversationID.directUsers(of: key.conversation)
        let group = ConversationID.groupID(of: key.conversation) ?? ""
        switch key.name {
        case "friend":
            let (a, b) = users!
            switch Friendship(registerValue: value) {
            case .none: friendshipChanged = .with { $0.userID = a; $0.peer = b; $0.action = .friendRemoved }
            case .friends: friendshipChanged = .with { $0.userID = a; $0.peer = b; $0.action = .friendAccepted }
            case .requested(let by, let greeting):
                friendshipChanged = .with { $0.userID = by; $0.peer = by == a ? b : a; $0.action = .friendRequested; $0.greeting = greeting }
            }
        case "block":
            let (a, b) = users!
            userBlocked = .with { $0.userID = key.subject; $0.peer = key.subject == a ? b : a; $0.blocked = value == "1" }
        case "name":
            groupUpdated = .with { $0.groupID = group; $0.field = .groupName; $0.value = value }
        case "role":
            memberUpdated = .with { $0.groupID = group; $0.userID = key.subject; $0.field = .memberRole; $0.value = value }
        default:
            preconditionFailure("RandomHistory writes no register \(key.name)")
        }
    }
}
