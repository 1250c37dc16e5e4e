import Logging
import ParleyAuth
import ParleyCore
import ParleyFault
import ParleyLogic
import ParleyProbe
import ParleyProto
import ParleyRPC
import ParleyTestSupport
import PostgresNIO
import Synchronization
import Testing

@testable import ParleyStore

/// The event log and derived state, against a real PostgreSQL started per test.
@Suite struct StoreTests {
    private func withStore(origin: String = "eu", _ body: (RegionStore, PostgresServer) async throws -> Void) async throws {
        let server = try await PostgresServer.start()
        let logger = Logger(label: "test")
        let store = RegionStore(postgres: server.location, origin: origin, clock: HybridLogicalClock(), logger: logger)
        let runner = Task { await store.run() }
        do {
            try await store.prepare()
            try await body(store, server)
        } catch {
            runner.cancel()
            await server.stop()
            throw error
        }
        runner.cancel()
        await server.stop()
    }

    private func register(_ users: [String], _ store: RegionStore) async throws {
        _ = try await store.commit(users.map { .register(userID: $0) })
    }

    private func post(_ from: String, to: Post.Target, _ body: String, id: String? = nil) -> Command {
        .post(Post(sender: from, senderDevice: "d", clientMsgID: id ?? body, target: to, body: body))
    }

    /// PostgreSQL takes TCP clients only with the password (SCRAM), as a
    /// region's does; every other test here connects with it.
    @Test func withoutThePasswordPostgresRefusesTheConnection() async throws {
        try await withStore { _, server in
            let psql = try PostgresServer.binDirectory() + "/psql"
            let arguments = ["-w", "-h", "127.0.0.1", "-p", "\(server.port)", "-U", "postgres", "-d", PostgresServer.database, "-c", "SELECT 1"]
            let without = try Subprocess.run(psql, arguments, environment: ["PGPASSWORD": "", "PGPASSFILE": "/dev/null"])
            #expect(without.status != 0 && without.output.contains("password"), "\(without)")
            let wrong = try Subprocess.run(psql, arguments, environment: ["PGPASSWORD": "a-guess", "PGPASSFILE": "/dev/null"])
            #expect(wrong.status != 0 && wrong.output.contains("password authentication failed"), "\(wrong)")
            #expect(try server.psql("SELECT 1") == "1", "with it, served")
        }
    }

    /// A PostgreSQL on another host is reached over TLS only
    /// (`certificateAuthority` in the region file): with the authority that
    /// signed its certificate the store works; in plaintext, or trusting
    /// another authority, it gets no connection.
    @Test func overTLSTheStoreReachesPostgresOnlyWithItsAuthority() async throws {
        let folder = try TestRun.scratch("pg-tls-certs")
        let authority = try CertificateAuthority.create()
        let pem = try authority.pem
        let issued = try authority.issue(name: "eu-postgres", role: "postgres", hosts: ["127.0.0.1"])
        for (name, text) in [("ca.pem", pem.certificate), ("server.pem", issued.certificate), ("server.key", issued.key),
                             ("stranger.pem", try CertificateAuthority.create(name: "another authority").pem.certificate)] {
            try text.write(toFile: "\(folder)/\(name)", atomically: true, encoding: .utf8)
        }
        let server = try await PostgresServer.start(name: "pg-tls", tls: ("\(folder)/server.pem", "\(folder)/server.key"))
        func reaches(trusting certificateAuthority: String?) async -> Bool {
            var location = server.location
            location.certificateAuthority = certificateAuthority
            let store = RegionStore(postgres: location, origin: "eu", clock: HybridLogicalClock(), logger: Logger(label: "test"))
            let runner = Task { await store.run() }
            defer { runner.cancel() }
            return (try? await withDeadline(.seconds(15), "prepare") { try await store.prepare() }) != nil
        }
        #expect(await reaches(trusting: "\(folder)/ca.pem"), "with the server's authority")
        #expect(await !reaches(trusting: nil), "in plaintext")
        #expect(server.log.contains("no encryption"), "PostgreSQL refused the plaintext connection: \(server.log.suffix(2_000))")
        #expect(await !reaches(trusting: "\(folder)/stranger.pem"), "trusting another authority")
        await server.stop()
    }

    /// A query written to a connection PostgreSQL has already closed fails at
    /// once; postgres-nio alone waits for it for ever (see `Database`). The
    /// close is complete (NIO has removed the connection's handlers) before
    /// the transaction's second query is written.
    @Test func aQueryOnAConnectionThatHasClosedFailsInsteadOfWaitingForEver() async throws {
        try await withStore { store, server in
            let outcome = Mutex<Result<Void, any Error>?>(nil)
            let logger = store.logger
            let transaction = Task {
                do {
                    try await store.database.withTransaction { tx in
                        try await tx.query("SELECT 1", logger: logger)
                        await server.kill9()
                        try await tx.raw.closeFuture.get()
                        try await tx.query("SELECT 2", logger: logger)
                    }
                    outcome.withLock { $0 = .success(()) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
            }
            defer { transaction.cancel() }
            let ended = try await eventually(.seconds(10)) { outcome.withLock { $0 != nil } }
            #expect(ended, "the query on the closed connection still waits")
            if case .success = outcome.withLock({ $0 }) { Issue.record("a query on a closed connection succeeded") }
            try await server.restart()
            try await store.ping()
        }
    }

    /// PostgreSQL killed and restarted again and again under a store that is
    /// listening, probed with short deadlines (as health checks do) and
    /// writing (as logic and sync's applier do): each time it is back, the
    /// writes go on. Before `Database`, one of the first six outages stopped
    /// the writer for good.
    @Test func aStoreWhosePostgresIsKilledAndRestartedAgainAndAgainKeepsWriting() async throws {
        try await withStore { store, server in
            try await register(["alice", "bob"], store)
            let commits = Atomic<Int>(0)
            let listening = Task {
                while !Task.isCancelled {
                    try? await store.listenForLogChanges {}
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            let probing = Task {
                while !Task.isCancelled {
                    _ = try? await withDeadline(.milliseconds(300), "probe") { try await store.ping() }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            let writing = Task {
                var n = 0
                while !Task.isCancelled {
                    n += 1
                    do {
                        _ = try await store.commit([self.post("alice", to: .user("bob"), "m\(n)")])
                        commits.add(1, ordering: .relaxed)
                    } catch {
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            defer {
                listening.cancel()
                probing.cancel()
                writing.cancel()
            }
            for outage in 1...6 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...800)))
                await server.kill9()
                try await Task.sleep(for: .milliseconds(Int.random(in: 100...1_500)))
                try await server.restart()
                let before = commits.load(ordering: .relaxed)
                let resumed = try await eventually(.seconds(20)) { commits.load(ordering: .relaxed) > before + 3 }
                #expect(resumed, "no write finished within 20 s of PostgreSQL's restart \(outage)")
                if !resumed { break }
            }
        }
    }

    @Test func migrationsAreIdempotent() async throws {
        try await withStore { store, server in
            try await store.prepare()
            #expect(try server.psql("SELECT count(*) FROM schema_migrations") == "\(Migrations.all.count)")
        }
    }

    @Test func aPostIsOneEventWithItsMessageInboxRowsAndUserSeqs() async throws {
        try await withStore { store, server in
            try await register(["alice", "bob"], store)
            let outcomes = try await store.commit([post("alice", to: .user("bob"), "hi")])
            guard case .committed(let event) = outcomes[0] else {
                Issue.record("expected a committed post, got \(outcomes)")
                return
            }
            #expect(event.origin == "eu" && event.seq == 3)
            #expect(event.audience.map(\.userID) == ["alice", "bob"])
            #expect(event.audience.map(\.userSeq) == [2, 2], "each user's first event was their registration")
            #expect(try server.psql("SELECT body FROM messages") == "hi")
            #expect(try server.psql("SELECT count(*) FROM inbox") == "4")
            let page = try await store.sync(userID: "bob", after: VersionVector(["eu": 1]), limit: 10)
            #expect(page.events.map(\.position.userSeq) == [2])
            #expect(page.events[0].event.audience.isEmpty, "devices never see the audience")
            #expect(page.cursor == VersionVector(["eu": 2]))
        }
    }

    @Test func aRetriedPostIsStoredOnceAndAnsweredWithTheFirstEvent() async throws {
        try await withStore { store, server in
            try await register(["alice", "bob"], store)
            let first = try await store.commit([post("alice", to: .user("bob"), "once", id: "m1")])
            // The same client_msg_id twice in one batch and again in a later batch.
            let again = try await store.commit([
                post("alice", to: .user("bob"), "once", id: "m1"), post("alice", to: .user("bob"), "once", id: "m1"),
            ])
            guard case .committed(let original) = first[0] else { Issue.record("\(first)"); return }
            for outcome in again {
                guard case .duplicate(let event) = outcome else { Issue.record("expected a duplicate, got \(outcome)"); continue }
                #expect(event.seq == original.seq)
            }
            #expect(try server.psql("SELECT count(*) FROM messages") == "1")
        }
    }

    @Test func invalidCommandsAreRejectedWithoutSpoilingTheirBatch() async throws {
        try await withStore { store, _ in
            try await register(["alice", "bob", "carol"], store)
            let outcomes = try await store.commit([
                post("alice", to: .user("nobody"), "x"),
                .createGroup(owner: "alice", groupID: "g1", name: "g", members: ["bob"]),
                post("carol", to: .group("g1"), "let me in"),
                post("bob", to: .group("g1"), "hello group"),
                post("alice", to: .group("missing"), "?"),
                post("alice", to: .user("alice"), "me"),
            ])
            let codes = outcomes.map { outcome -> UInt32 in
                if case .rejected(let error) = outcome { return error.code.rawValue }
                return 0
            }
            #expect(codes == [
                ClientErrorCode.unknownUser.rawValue, 0, ClientErrorCode.notMember.rawValue, 0,
                ClientErrorCode.unknownConversation.rawValue, ClientErrorCode.invalidRequest.rawValue,
            ])
            let vector = try await store.appliedVector()
            #expect(vector["eu"] == 5, "3 registrations, the group and one post: rejected commands take no seq")
        }
    }

    @Test func readMarkersOnlyMoveForwardAndDriveUnreadCounts() async throws {
        try await withStore { store, _ in
            try await register(["alice", "bob"], store)
            let posts = try await store.commit((1...3).map { post("alice", to: .user("bob"), "m\($0)") })
            let ids = posts.compactMap { outcome -> MessageID? in
                if case .committed(let e) = outcome { return MessageID(e.messagePosted.messageID) }
                return nil
            }
            let conversation = ConversationID.direct("alice", "bob")
            #expect(try await store.unreadCounts(userID: "bob") == [conversation: 3])
            #expect(try await store.unreadCounts(userID: "alice") == [:], "own messages are not unread")
            _ = try await store.commit([.markRead(reader: "bob", conversationID: conversation, messageID: ids[1])])
            #expect(try await store.unreadCounts(userID: "bob") == [conversation: 1])
            let back = try await store.commit([.markRead(reader: "bob", conversationID: conversation, messageID: ids[0])])
            guard case .unchanged = back[0] else { Issue.record("a marker moving back must change nothing: \(back)"); return }
            #expect(try await store.unreadCounts(userID: "bob") == [conversation: 1])
            #expect(try await store.access(userID: "bob", conversationID: conversation) == .member)
            #expect(try await store.access(userID: "carol", conversationID: conversation) == .notMember)
            #expect(try await store.access(userID: "bob", conversationID: "d:x:y") == .unknownConversation)
            let history = try #require(try await store.history(conversationID: conversation, before: nil, limit: 2))
            #expect(history.messages.map(\.messagePosted.body) == ["m3", "m2"] && history.more)
            let older = try #require(try await store.history(conversationID: conversation, before: ids[1], limit: 2))
            #expect(older.messages.map(\.messagePosted.body) == ["m1"] && !older.more)
            #expect(try await store.history(conversationID: "d:x:y", before: ids[1], limit: 2) == nil, "a message of another conversation")
        }
    }

    /// Two writers (as two logic instances would be) commit concurrently:
    /// every seq from 1 to N exists once, and seq order is commit order.
    @Test func concurrentWritersKeepSeqDenseAndInCommitOrder() async throws {
        try await withStore { store, server in
            _ = try server.psql("""
                CREATE TABLE commit_order (n bigserial, seq bigint);
                CREATE FUNCTION note_commit() RETURNS trigger AS $$
                BEGIN INSERT INTO commit_order (seq) VALUES (NEW.seq); RETURN NULL; END $$ LANGUAGE plpgsql;
                CREATE CONSTRAINT TRIGGER note_commit AFTER INSERT ON events
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_commit();
                """)
            let users = (0..<20).map { "u\($0)" }
            try await register(users, store)
            let other = RegionStore(postgres: server.location, origin: "eu", clock: HybridLogicalClock(), logger: store.logger)
            let otherRunner = Task { await other.run() }
            defer { otherRunner.cancel() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in [store, other] {
                    for task in 0..<8 {
                        group.addTask {
                            for round in 0..<10 {
                                let batch = (0..<5).map { i in
                                    self.post(users[(task + i) % 20], to: .user(users[(task + i + 1) % 20]), "w\(task)-\(round)-\(i)-\(ObjectIdentifier(writer).hashValue)")
                                }
                                _ = try await writer.commit(batch)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let total = 20 + 2 * 8 * 10 * 5
            #expect(try server.psql("SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM events") == "\(total)|1|\(total)|\(total)")
            // Deferred triggers fire at commit, in commit order: seq must never go backwards.
            #expect(try server.psql("""
                SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY n) AS previous FROM commit_order) t
                WHERE previous IS NOT NULL AND seq < previous
                """) == "0")
            // Each user's user_seq is dense too.
            #expect(try server.psql("""
                SELECT count(*) FROM (SELECT user_id, count(*) AS c, max(user_seq) AS m FROM inbox GROUP BY user_id) t WHERE c <> m
                """) == "0")
        }
    }
}

extension StoreTests {
    /// A profile event for `user`, numbered after `start`.
    private func profileEvent(_ user: String, after start: CommitStart, value: String) -> Parley_Event {
        .with {
            $0.origin = start.origin
            $0.seq = start.appliedSeq + 1
            $0.hlc = max(start.floorHLC.rawValue, start.now.rawValue) + 1
            $0.audience = [.with { $0.userID = user }]
            $0.profileSet = .with { $0.userID = user; $0.field = "name"; $0.value = value }
        }
    }

    /// The optimistic commit reads without a lock; a commit of the same
    /// origin that lands between its read and its write makes it write
    /// nothing, and the batch commits again under the lock, planned anew.
    @Test func aHeadMovedBetweenSnapshotAndWriteSendsTheBatchUnderTheLock() async throws {
        try await withStore { store, server in
            try await register(["ann"], store)
            let before = try #require(UInt64(try server.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'")))
            var keys = SnapshotKeys()
            keys.users = ["ann"]
            var plans = 0
            let (_, events) = try await store.commit(reading: keys) { snapshot, start in
                plans += 1
                if plans == 1 {
                    // Another committer's event lands now, moving the head.
                    _ = try server.psql("""
                        BEGIN;
                        INSERT INTO events (origin, seq, hlc, kind, payload, conversation_id)
                          VALUES ('eu', \(start.appliedSeq + 1), \(start.now.rawValue), 9, '\\x'::bytea, '');
                        UPDATE origins SET applied_seq = \(start.appliedSeq + 1) WHERE origin = 'eu';
                        COMMIT;
                        """)
                }
                return ((), [profileEvent("ann", after: start, value: "Ann \(plans)")])
            }
            #expect(plans == 2, "planned again under the lock")
            #expect(events.map(\.seq) == [before + 2])
            #expect(try server.psql("SELECT value FROM profiles WHERE user_id = 'ann'") == "Ann 2")
            #expect(try server.psql("SELECT count(*), max(seq) FROM events WHERE origin = 'eu'") == "\(before + 2)|\(before + 2)")
            #expect(try server.psql("SELECT applied_seq FROM origins WHERE origin = 'eu'") == "\(before + 2)")
        }
    }

    /// An audience the snapshot read no counter for is numbered under the
    /// lock, from the counter itself.
    @Test func anAudienceBeyondTheCountersReadIsNumberedUnderTheLock() async throws {
        try await withStore { store, server in
            try await register(["ann", "bob"], store)
            var plans = 0
            // The keys name nobody, so the snapshot reads no counter.
            let (_, events) = try await store.commit(reading: SnapshotKeys()) { _, start in
                plans += 1
                return ((), [profileEvent("bob", after: start, value: "Bob")])
            }
            #expect(plans == 2)
            #expect(events.first?.audience.first?.userSeq == 2, "bob's second event")
            #expect(try server.psql("SELECT user_seq FROM user_counters WHERE user_id = 'bob' AND origin = 'eu'") == "2")
            #expect(try server.psql("SELECT max(user_seq) FROM inbox WHERE user_id = 'bob'") == "2")
        }
    }
}

extension PostgresServer {
    /// Where a store reaches this server.
    var location: PostgresLocation {
        PostgresLocation(host: "127.0.0.1", port: port, database: PostgresServer.database, password: password)
    }
}

/// The store numbers each audience entry of a commit's events.
@Suite struct UserSeqTests {
    private func event(_ seq: UInt64, _ audience: [String]) -> Parley_Event {
        .with { event in
            event.origin = "eu"
            event.seq = seq
            event.audience = audience.map { user in .with { $0.userID = user } }
        }
    }

    @Test func countersAreLockedInUserIDOrderAndEachUsersEventsEndAtItsCounter() {
        var events = [event(11, ["b", "a"]), event(12, ["c"]), event(13, ["a", "c"])]
        #expect(RegionStore.audienceCounts(events).map(\.userID) == ["a", "b", "c"], "counters are locked in user-id order")
        RegionStore.assignUserSeqs(&events, counterEnds: ["a": 7, "b": 4, "c": 2])
        #expect(events[0].audience.map(\.userSeq) == [4, 6])
        #expect(events[1].audience.map(\.userSeq) == [1])
        #expect(events[2].audience.map(\.userSeq) == [7, 2])
    }
}
