import Foundation
import ParleyClient
import ParleyCore
import ParleyExt
import ParleyTestSupport
import ParleyTools
import Synchronization
import Testing

/// `parley ext` with a real region, a real Redis stream, a real PostgreSQL
/// and a push gateway of the test's own (`PushSink`, really listening).
@Suite(.serialized, .timeLimit(.minutes(3))) struct ExtTests {
    static let secret = "push-secret-for-tests-0123456789abcdef"

    /// Starts a push sink on a free port, runs `body` with it and its URL, and stops it.
    static func withSink<T: Sendable>(_ body: (PushSink, String) async throws -> T) async throws -> T {
        let sink = PushSink(secret: secret)
        let port = try FreePort.next()
        let ready = Mutex(false)
        let server = Task { try await sink.run(host: "127.0.0.1", port: port, ready: { ready.withLock { $0 = true } }) }
        do {
            guard try await eventually(.seconds(10), { ready.withLock { $0 } }) else { throw TestSupportError("push sink did not start") }
            let result = try await body(sink, "http://127.0.0.1:\(port)/push")
            await sink.stop()
            try await server.value
            return result
        } catch {
            await sink.stop()
            _ = try? await server.value
            throw error
        }
    }

    static func extArguments(_ url: String, collapseMs: Int, _ more: [String] = []) -> [String] {
        ["--push-gateway", url, "--collapse-ms", "\(collapseMs)"] + more
    }

    static let environment = ["PARLEY_PUSH_SECRET": secret]

    /// Signs in as `user` on `device`, registers `token` for it and, unless
    /// `stayOnline`, disconnects: the device is offline with a push token.
    static func registerDevice(_ region: LocalRegion, _ user: String, device: String, token: String, stayOnline: Bool = false) async throws -> TestUser? {
        let session = try await region.connect(user, device: device)
        _ = try await session.client.registerPush(token: token)
        if stayOnline { return session }
        await session.stop()
        return nil
    }

    @Test func anOfflineDeviceGetsOneSignedNotificationPerBurstAndNoneWhenOnlineOrMuted() async throws {
        try await Self.withSink { sink, url in
            try await LocalRegion.with { region in
                try await region.startExt(0, arguments: Self.extArguments(url, collapseMs: 1_500), environment: Self.environment)
                _ = try await Self.registerDevice(region, "bob", device: "phone", token: "tok-phone")
                let tablet = try await Self.registerDevice(region, "bob", device: "tablet", token: "tok-tablet", stayOnline: true)!
                _ = try await Self.registerDevice(region, "carol", device: "phone", token: "tok-carol")
                let alice = try await region.connect("alice")

                // A burst of three within the collapse window: one notification, to the offline device only.
                for body in ["one", "two", "three"] { _ = try await alice.client.send(to: .user("bob"), body: body) }
                #expect(try await eventually(.seconds(20)) { !sink.delivered.isEmpty })
                let burst = sink.delivered
                #expect(burst.count == 1, "\(burst)")
                #expect(burst.first?.deviceID == "phone" && burst.first?.token == "tok-phone" && burst.first?.messages == 3)
                #expect(burst.first?.latest.preview == "three" && burst.first?.latest.sender == "alice")
                #expect(burst.first?.latest.conversationID == ConversationID.direct("alice", "bob"))
                #expect(burst.first?.region == "eu" && burst.first?.attempt == 1)

                // Muted: alice's next message notifies nobody. Carol's, in another
                // conversation, comes later in the log, so once it is notified
                // alice's was handled, and counted nowhere.
                _ = try await tablet.client.mute(ConversationID.direct("alice", "bob"))
                _ = try await alice.client.send(to: .user("bob"), body: "muted")
                let group = try await alice.client.createGroup(name: "team", members: ["bob", "carol"])
                let carol = try await region.connect("carol", device: "laptop")
                _ = try await carol.client.send(to: .group(group.groupID), body: "team news")
                #expect(try await eventually(.seconds(20)) { sink.delivered.count >= 2 })
                // Bob's phone hears of the group message only; carol, the sender, of nothing.
                let later = Array(sink.delivered.dropFirst())
                #expect(later.count == 1, "\(later)")
                #expect(later.first?.userID == "bob" && later.first?.messages == 1 && later.first?.latest.preview == "team news")
                #expect(sink.calls.allSatisfy { $0.notification.userID == "bob" && $0.notification.deviceID == "phone" })

                // Muting everything silences the group too, for bob only: carol's
                // offline phone hears of both group messages.
                _ = try await tablet.client.mute("")
                _ = try await alice.client.send(to: .group(group.groupID), body: "silenced")
                _ = try await tablet.client.mute("", false)
                _ = try await alice.client.send(to: .group(group.groupID), body: "heard")
                func messages(to user: String) -> Int { sink.delivered.dropFirst(2).filter { $0.userID == user }.reduce(0) { $0 + $1.messages } }
                #expect(try await eventually(.seconds(20)) { messages(to: "bob") >= 1 && messages(to: "carol") >= 2 })
                let bobs = sink.delivered.dropFirst(2).filter { $0.userID == "bob" }
                #expect(bobs.count == 1 && bobs.first?.messages == 1 && bobs.first?.latest.preview == "heard", "\(bobs)")
                #expect(messages(to: "carol") == 2 && sink.delivered.last(where: { $0.userID == "carol" })?.latest.preview == "heard")
                for user in [alice, carol, tablet] { await user.stop() }
            }
        }
    }

    @Test func aGatewayThatFailsGetsTheNotificationLaterAndOnce() async throws {
        try await Self.withSink { sink, url in
            try await LocalRegion.with { region in
                try await region.startExt(
                    0, arguments: Self.extArguments(url, collapseMs: 200, ["--retry-base-ms", "200"]), environment: Self.environment
                )
                _ = try await Self.registerDevice(region, "bob", device: "phone", token: "tok-phone")
                let alice = try await region.connect("alice")
                sink.failNext(3)
                _ = try await alice.client.send(to: .user("bob"), body: "are you there")
                #expect(try await eventually(.seconds(30)) { sink.delivered.count == 1 })
                let calls = sink.calls
                #expect(calls.map(\.status) == [503, 503, 503, 200], "\(calls.map(\.status))")
                #expect(Set(calls.map(\.notification.notificationID)).count == 1, "every retry carries the same id")
                #expect(calls.map(\.notification.attempt) == [1, 2, 3, 4])
                #expect(calls.last?.notification.messages == 1)
                // A later message is a new notification: the delivered one is not sent again.
                _ = try await alice.client.send(to: .user("bob"), body: "hello?")
                #expect(try await eventually(.seconds(20)) { sink.delivered.count == 2 })
                #expect(Set(sink.delivered.map(\.notificationID)).count == 2)
                #expect(sink.calls.count == 5)
                await alice.stop()
            }
        }
    }

    /// Two instances share the work; one is killed while 20 users' devices
    /// are owed notifications for 400 messages. The survivor claims what the
    /// dead one held (XAUTOCLAIM) and the stream's work is done exactly
    /// once: every user's notifications count exactly the messages sent to them.
    @Test func anExtKilledMidWorkIsTakenOverAndNothingIsNotifiedTwice() async throws {
        try await Self.withSink { sink, url in
            try await LocalRegion.with { region in
                let arguments = Self.extArguments(url, collapseMs: 300, ["--claim-idle-ms", "2000"])
                try await region.startExt(0, arguments: arguments, environment: Self.environment)
                try await region.startExt(1, arguments: arguments, environment: Self.environment)
                let users = (0..<20).map { "u\($0)" }
                for user in users { _ = try await Self.registerDevice(region, user, device: "phone", token: "tok-\(user)") }
                let alice = try await region.connect("alice")
                let perUser = 20
                for round in 0..<perUser {
                    if round == perUser / 2 { await region.ext[0].kill9() }
                    if round == perUser * 3 / 4 { try await region.startExt(0, arguments: arguments, environment: Self.environment) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for user in users { group.addTask { _ = try await alice.client.send(to: .user(user), body: "m\(round)") } }
                        try await group.waitForAll()
                    }
                }
                // A call whose answer the killed instance never recorded is sent
                // again with its id (at least once); a gateway keys on the id.
                func counted() -> [String: Int] {
                    var byID: [String: PushGateway.Notification] = [:]
                    for notification in sink.delivered { byID[notification.notificationID] = notification }
                    return byID.values.reduce(into: [:]) { $0[$1.userID, default: 0] += $1.messages }
                }
                #expect(try await eventually(.seconds(60)) { counted().values.reduce(0, +) >= users.count * perUser })
                #expect(counted() == Dictionary(uniqueKeysWithValues: users.map { ($0, perUser) }), "\(counted())")
                await alice.stop()
            }
        }
    }

    /// A consumer that read work and died before finishing it (a `ghost`,
    /// made with redis-cli) leaves it pending; a live instance claims it once
    /// it has been idle for `--claim-idle-ms`, long before the log would
    /// give it back (`--rederive-after-ms` is a minute here).
    @Test func workLeftPendingByADeadConsumerIsClaimed() async throws {
        try await Self.withSink { sink, url in
            try await LocalRegion.with { region in
                let arguments = Self.extArguments(url, collapseMs: 200, ["--claim-idle-ms", "1500", "--rederive-after-ms", "60000"])
                try await region.startExt(0, arguments: arguments, environment: Self.environment)
                _ = try await Self.registerDevice(region, "bob", device: "phone", token: "tok-phone")
                await region.ext[0].stop()
                let alice = try await region.connect("alice")
                _ = try await alice.client.send(to: .user("bob"), body: "held by a ghost")
                let read = try region.redis.cli(
                    "XREADGROUP", "GROUP", FollowUpWork.group, "ghost", "COUNT", "100", "STREAMS", FollowUpWork.stream, ">"
                )
                #expect(read.contains("origin"), "the ghost took the announcement: \(read)")
                try await region.startExt(0, arguments: arguments, environment: Self.environment)
                #expect(try await eventually(.seconds(30)) { sink.delivered.contains { $0.latest.preview == "held by a ghost" } })
                #expect(region.ext[0].log.contains("claimed abandoned follow-up work"))
                #expect(sink.delivered.count == 1)

                // Everything announced again (a duplicate, as a retry would make)
                // is done already: the next message is the only new notification.
                try region.redis.cli("XADD", FollowUpWork.stream, "*", "origin", "eu", "first", "1", "last", "1000")
                _ = try await alice.client.send(to: .user("bob"), body: "after the duplicate")
                #expect(try await eventually(.seconds(30)) { sink.delivered.contains { $0.latest.preview == "after the duplicate" } })
                #expect(sink.delivered.map(\.messages) == [1, 1], "\(sink.delivered)")
                await alice.stop()
            }
        }
    }

    /// Redis is not the source of truth: with ext stopped, messages are
    /// committed and Redis is flushed (the stream and its group gone). The
    /// next ext finds the events in the log that nobody announced to it and
    /// owes their notifications all the same.
    @Test func aFlushedRedisLosesNoFollowUpWork() async throws {
        try await Self.withSink { sink, url in
            try await LocalRegion.with { region in
                let arguments = Self.extArguments(url, collapseMs: 300, ["--rederive-after-ms", "1000"])
                try await region.startExt(0, arguments: arguments, environment: Self.environment)
                _ = try await Self.registerDevice(region, "bob", device: "phone", token: "tok-phone")
                await region.ext[0].stop()
                let alice = try await region.connect("alice")
                for index in 1...5 { _ = try await alice.client.send(to: .user("bob"), body: "while ext was away \(index)") }
                #expect(try region.redis.cli("XLEN", FollowUpWork.stream).trimmingCharacters(in: .whitespacesAndNewlines) != "0")
                try region.redis.cli("FLUSHALL")
                try await region.startExt(0, arguments: arguments, environment: Self.environment)
                #expect(try await eventually(.seconds(30)) { sink.delivered.reduce(0) { $0 + $1.messages } >= 5 })
                #expect(sink.delivered.reduce(0) { $0 + $1.messages } == 5)
                #expect(sink.delivered.last?.latest.preview == "while ext was away 5")
                #expect(region.ext[0].log.contains("re-deriving follow-up work the stream lost"))
                await alice.stop()
            }
        }
    }
}
