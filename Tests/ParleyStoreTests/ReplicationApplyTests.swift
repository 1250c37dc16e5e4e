import Logging
import ParleyCore
import ParleyLogic
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
        let logger = Logger(label: origin)
        let store = RegionStore(postgres: server.location, origin: origin, clock: HybridLogicalClock(), logger: logger)
        let runner = Task { await store.run() }
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
            let refused = await #expect(throws: StoreError.self) {
                try await us.store.applyReplicated([log[0]].map { var e = $0; e.seq = UInt64(log.count + 5); return e })
            }
            #expect(refused?.kind == .refusedBatch)
            #expect(refused?.clientError.code == .unavailable)
            #expect(refused?.clientError.message.contains("gap") == false, "a device learns only that it may retry")
            #expect(try await us.store.appliedVector()["eu"] == UInt64(log.count))
        } catch {
            await stop([eu, us])
            throw error
        }
        await stop([eu, us])
    }

    /// The digests PostgreSQL keeps (log buckets, per-conversation log and
    /// state), as stored and as counted again from the rows.
    private func digests(_ region: Region, recount: Bool = false) throws -> String {
        guard recount else {
            return try region.server.psql("""
                SELECT concat_ws(' / ',
                  (SELECT string_agg(concat_ws(',', origin, bucket, digest, events), ';' ORDER BY origin, bucket) FROM log_buckets WHERE events <> 0),
                  (SELECT string_agg(concat_ws(',', conversation_id, log_digest, log_events, state_digest), ';' ORDER BY conversation_id)
                     FROM conversation_digests WHERE log_events <> 0 OR state_digest <> 0))
                """)
        }
        let state = Digests.derivedTables.map { "SELECT r.conversation_id AS c, \($0.rowHash) AS h FROM \($0.table) r" }.joined(separator: " UNION ALL ")
        return try region.server.psql("""
            SELECT concat_ws(' / ',
              (SELECT string_agg(concat_ws(',', origin, bucket, digest, events), ';' ORDER BY origin, bucket) FROM
                 (SELECT r.origin, r.seq >> 10 AS bucket, bit_xor(\(Digests.eventHash)) AS digest, count(*) AS events FROM events r GROUP BY 1, 2) b),
              (SELECT string_agg(concat_ws(',', c, coalesce(l, 0), coalesce(n, 0), coalesce(s, 0)), ';' ORDER BY c) FROM
                 (SELECT coalesce(l.c, s.c) AS c, l.l, l.n, s.s FROM
                    (SELECT r.conversation_id AS c, bit_xor(\(Digests.eventHash)) AS l, count(*) AS n FROM events r WHERE r.conversation_id <> '' GROUP BY 1) l
                    FULL JOIN (SELECT c, bit_xor(h) AS s FROM (\(state)) x GROUP BY 1) s ON l.c = s.c) d))
            """)
    }

    @Test func digestsKeptByPostgresEqualARecountAgreeAcrossRegionsAndMoveWithRowsChangedBehindTheSystemsBack() async throws {
        let eu = try await start("eu")
        let us: Region
        do { us = try await start("us") } catch {
            await stop([eu])
            throw error
        }
        do {
            _ = try await eu.store.commit(["ann", "bob", "dan"].map { .register(userID: $0) })
            _ = try await us.store.commit([.register(userID: "cat")])
            _ = try await eu.store.commit([.createGroup(owner: "ann", groupID: "g1", name: "g", members: ["bob"])])
            var ids: [MessageID] = []
            for round in 0..<6 {
                let outcomes = try await eu.store.commit([
                    .post(Post(sender: "ann", senderDevice: "d", clientMsgID: "g\(round)", target: .group("g1"), body: "g\(round)")),
                    .post(Post(sender: "bob", senderDevice: "d", clientMsgID: "d\(round)", target: .user("ann"), body: "d\(round)")),
                ])
                for case .committed(let event) in outcomes { ids.append(MessageID(event.messagePosted.messageID)!) }
            }
            _ = try await eu.store.commit([
                .edit(editor: "ann", messageID: ids[0], body: "g0, edited"),
                .recall(by: "bob", messageID: ids[1]),
                .addMember(by: "ann", groupID: "g1", userID: "dan"),
                .markRead(reader: "bob", conversationID: ConversationID.group("g1"), messageID: ids[4]),
            ])
            _ = try await eu.store.commit([.removeMember(by: "ann", groupID: "g1", userID: "bob")])
            // Both directions replicated, in two batches one way and one the other.
            let fromEU = try await eu.store.events(origin: "eu", after: 0, limit: 1_000)
            try await us.store.applyReplicated(Array(fromEU.prefix(5)))
            try await us.store.applyReplicated(Array(fromEU.dropFirst(5)))
            try await eu.store.applyReplicated(try await us.store.events(origin: "us", after: 0, limit: 1_000))

            for region in [eu, us] { #expect(try digests(region) == digests(region, recount: true), "kept digests equal a recount") }
            #expect(try digests(eu) == digests(us), "both regions hold the same log and state")
            let groupEvents = try eu.server.psql("SELECT log_events FROM conversation_digests WHERE conversation_id = '\(ConversationID.group("g1"))'")
            #expect(groupEvents == "11", "the group's events: created, 6 posts, an edit, an add, a read marker, a removal")

            // A body forged in us: that conversation's state digest moves, its log digest does not.
            let group = ConversationID.group("g1")
            func row(_ region: Region) throws -> String {
                try region.server.psql("SELECT concat_ws(',', log_digest, log_events, state_digest) FROM conversation_digests WHERE conversation_id = '\(group)'")
            }
            _ = try us.server.psql("UPDATE messages SET body = 'forged' WHERE body = 'g2'")
            #expect(try digests(us) == digests(us, recount: true))
            let (euRow, usRow) = (try row(eu).split(separator: ","), try row(us).split(separator: ","))
            #expect(euRow[0...1] == usRow[0...1] && euRow[2] != usRow[2])

            // An event row deleted in us: its bucket's digest and count move.
            _ = try us.server.psql("DELETE FROM events WHERE origin = 'eu' AND seq = 3")
            #expect(try digests(us) == digests(us, recount: true))
            #expect(try eu.server.psql("SELECT events FROM log_buckets WHERE origin = 'eu' AND bucket = 0") == "\(fromEU.count)")
            #expect(try us.server.psql("SELECT events FROM log_buckets WHERE origin = 'eu' AND bucket = 0") == "\(fromEU.count - 1)")
        } catch {
            await stop([eu, us])
            throw error
        }
        await stop([eu, us])
    }
}
