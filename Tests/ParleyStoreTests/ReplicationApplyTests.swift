import Logging
import ParleyCore
import ParleyProto
import ParleyTestSupport
import PostgresNIO
import Testing

@testable import ParleyStore

/// Events committed in one region's store, applied in another's: the derived
/// state matches, whatever the batching and however often events repeat.
@Suite struct ReplicationApplyTests {
    private struct Region {
        let server: PostgresServer
        let store: RegionStore
        let runner: Task<Void, Never>
    }

    private func start(_ origin: String) async throws -> Region {
        let server = try await PostgresServer.start(name: "\(origin)-postgres")
        let configuration = PostgresClient.Configuration(
            host: "127.0.0.1", port: server.port, username: "postgres", password: nil,
            database: PostgresServer.database, tls: .disable
        )
        let logger = Logger(label: origin)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let runner = Task { await client.run() }
        let store = RegionStore(client: client, origin: origin, clock: HybridLogicalClock(), logger: logger)
        do { try await store.prepare() } catch {
            runner.cancel()
            await server.stop()
            throw error
        }
        return Region(server: server, store: store, runner: runner)
    }

    private func stop(_ regions: [Region]) async {
        for region in regions {
            region.runner.cancel()
            await region.server.stop()
        }
    }

    /// A digest of every table a replicated event touches, origin by origin.
    private func digest(_ region: Region, origin: String) throws -> String {
        try region.server.psql("""
            SELECT md5(concat_ws('|',
              (SELECT string_agg(concat_ws(',', seq, hlc, kind, md5(payload)), ';' ORDER BY seq) FROM events WHERE origin = '\(origin)'),
              (SELECT string_agg(concat_ws(',', user_id, user_seq, event_seq), ';' ORDER BY user_id, user_seq) FROM inbox WHERE origin = '\(origin)'),
              (SELECT string_agg(concat_ws(',', user_id, user_seq), ';' ORDER BY user_id) FROM user_counters WHERE origin = '\(origin)'),
              (SELECT string_agg(concat_ws(',', seq, conversation_id, hlc, sender, body), ';' ORDER BY seq) FROM messages WHERE origin = '\(origin)'),
              (SELECT string_agg(concat_ws(',', conversation_id, is_group, name, owner), ';' ORDER BY conversation_id) FROM conversations),
              (SELECT string_agg(concat_ws(',', conversation_id, user_id), ';' ORDER BY conversation_id, user_id) FROM members),
              (SELECT string_agg(concat_ws(',', conversation_id, user_id, hlc, origin, seq), ';' ORDER BY conversation_id, user_id) FROM read_markers),
              (SELECT string_agg(user_id, ';' ORDER BY user_id) FROM users),
              (SELECT applied_seq FROM origins WHERE origin = '\(origin)')))
            """)
    }

    @Test func eventsAppliedElsewhereInAnyBatchingGiveTheSameStateAndCursors() async throws {
        let eu = try await start("eu")
        let us: Region
        do { us = try await start("us") } catch {
            await stop([eu])
            throw error
        }
        do {
            let users = ["ann", "bob", "cat"]
            _ = try await eu.store.commit(users.map { .register(userID: $0) })
            _ = try await eu.store.commit([.createGroup(owner: "ann", groupID: "g1", name: "g", members: ["bob", "cat"])])
            var ids: [MessageID] = []
            for round in 0..<20 {
                let outcomes = try await eu.store.commit([
                    .post(Post(sender: users[round % 3], senderDevice: "d", clientMsgID: "m\(round)", target: .group("g1"), body: "g\(round)")),
                    .post(Post(sender: "ann", senderDevice: "d", clientMsgID: "d\(round)", target: .user("bob"), body: "d\(round)")),
                ])
                for case .committed(let event) in outcomes { ids.append(MessageID(event.messagePosted.messageID)!) }
            }
            _ = try await eu.store.commit([
                .markRead(reader: "bob", conversationID: ConversationID.group("g1"), messageID: ids[10]),
                .markRead(reader: "bob", conversationID: ConversationID.direct("ann", "bob"), messageID: ids[5]),
            ])
            let log = try await eu.store.events(origin: "eu", after: 0, limit: 10_000)
            #expect(log.map(\.seq) == Array(1...UInt64(log.count)))

            // Applied in uneven chunks, each overlapping what was already applied.
            var next = 0
            var rng = SystemRandomNumberGenerator()
            while next < log.count {
                let from = max(0, next - Int.random(in: 0...3, using: &rng))
                let to = min(log.count, next + Int.random(in: 1...7, using: &rng))
                let vector = try await us.store.applyReplicated(Array(log[from..<to]))
                #expect(vector["eu"] == UInt64(to))
                next = to
            }
            try await us.store.applyReplicated(log)  // everything again: nothing changes
            #expect(try digest(us, origin: "eu") == digest(eu, origin: "eu"))

            // A device's cursor means the same in both regions.
            for user in users {
                let cursor = VersionVector(["eu": 7])
                let here = try await eu.store.sync(userID: user, after: cursor, limit: 1000)
                let there = try await us.store.sync(userID: user, after: cursor, limit: 1000)
                #expect(here.events.map(\.position) == there.events.map(\.position))
                #expect(here.events.map(\.event) == there.events.map(\.event))
                #expect(here.cursor == there.cursor)
            }
            // Unread counts and history are derived the same way too.
            #expect(try await us.store.unreadCounts(userID: "bob") == eu.store.unreadCounts(userID: "bob"))

            // A batch that would leave a gap is refused and changes nothing.
            await #expect(throws: StoreError.self) { try await us.store.applyReplicated([log[0]].map { var e = $0; e.seq = UInt64(log.count + 5); return e }) }
            #expect(try await us.store.appliedVector()["eu"] == UInt64(log.count))
        } catch {
            await stop([eu, us])
            throw error
        }
        await stop([eu, us])
    }
}
