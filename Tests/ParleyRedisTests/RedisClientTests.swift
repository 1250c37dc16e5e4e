import ParleyPresence
@testable import ParleyRedis
import ParleyTestSupport
import Synchronization
import Testing

/// Against a real redis-server started for each test.
@Suite struct RedisClientTests {
    private func withRedis(_ body: (RedisClient, RedisServer) async throws -> Void) async throws {
        let server = try await RedisServer.start()
        let client = RedisClient(host: "127.0.0.1", port: server.port, password: server.password)
        do {
            try await body(client, server)
        } catch {
            await client.close()
            await server.stop()
            throw error
        }
        await client.close()
        await server.stop()
    }

    @Test func commandsRoundTripBinarySafely() async throws {
        try await withRedis { redis, _ in
            #expect(try await redis.send("SET", "greeting", "hé\r\nllo") == .status("OK"))
            #expect(try await redis.send("GET", "greeting").string == "hé\r\nllo")
            #expect(try await redis.send("GET", "missing") == .null)
            #expect(try await redis.send("INCRBY", "n", "41").integer == 41)
            guard case .error(let message) = try await redis.send("NOSUCHCOMMAND") else {
                Issue.record("an unknown command must answer an error reply")
                return
            }
            #expect(message.contains("unknown command"))
            let list = try await redis.send("RPUSH", "l", "a", "b")
            #expect(list.integer == 2)
            #expect(try await redis.send("LRANGE", "l", "0", "-1") == .array([.bulk(Array("a".utf8)), .bulk(Array("b".utf8))]))
        }
    }

    @Test func pipelinedAndConcurrentCommandsGetTheirOwnReplies() async throws {
        try await withRedis { redis, _ in
            let replies = try await redis.pipeline((0..<100).map { _ in ["INCR", "counter"] })
            #expect(replies.map(\.integer) == (1...100).map { Int64($0) })
            try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for index in 0..<200 {
                    group.addTask {
                        try await redis.send("SET", "k\(index)", "v\(index)")
                        return (index, try await redis.send("GET", "k\(index)").string)
                    }
                }
                for try await (index, value) in group { #expect(value == "v\(index)") }
            }
        }
    }

    /// Redis takes no command without the password, and a connection with a
    /// wrong one is never handed out.
    @Test func withoutThePasswordNothingIsServed() async throws {
        try await withRedis { redis, server in
            try await redis.send("SET", "secret", "kept")
            let stranger = RedisClient(host: "127.0.0.1", port: server.port)
            guard case .error(let message) = try await stranger.send("GET", "secret") else {
                Issue.record("a client without the password was served")
                return
            }
            #expect(message.hasPrefix("NOAUTH"), "\(message)")
            await stranger.close()
            let guesser = RedisClient(host: "127.0.0.1", port: server.port, password: "a-guess")
            await #expect { try await guesser.send("GET", "secret") } throws: { error in
                "\(error)".contains("AUTH refused")
            }
            await guesser.close()
            #expect(try await redis.send("GET", "secret").string == "kept")
        }
    }

    @Test func reconnectsAfterTheServerDropsTheConnection() async throws {
        try await withRedis { redis, server in
            try await redis.send("CLIENT", "SETNAME", "victim")
            let killer = RedisClient(host: redis.host, port: redis.port, password: server.password)
            #expect(try await killer.send("CLIENT", "KILL", "SKIPME", "yes").integer == 1)
            await killer.close()
            // The first command may fail on the dead connection; the next one reconnects.
            _ = try? await redis.send("PING")
            #expect(try await redis.send("PING") == .status("PONG"))
        }
    }

    /// A command written to a connection that has closed, after NIO has
    /// removed its handlers, fails at once instead of waiting for ever.
    @Test func aCommandOnAConnectionThatHasClosedFailsInsteadOfWaitingForEver() async throws {
        try await withRedis { redis, _ in
            let channel = try await redis.connectedChannel()
            try await channel.close()
            try await channel.closeFuture.get()
            let outcome = Mutex<Result<[RESPValue], any Error>?>(nil)
            let command = Task {
                do {
                    let replies = try await redis.pipeline(bytes: [[Array("PING".utf8)]], on: channel)
                    outcome.withLock { $0 = .success(replies) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
            }
            defer { command.cancel() }
            #expect(try await eventually(.seconds(10)) { outcome.withLock { $0 != nil } }, "the command still waits")
            if case .success = outcome.withLock({ $0 }) { Issue.record("a command on a closed connection was answered") }
            #expect(try await redis.send("PING") == .status("PONG"), "the next command reconnects")
        }
    }

    @Test func presenceLocatesLiveDevicesAndForgetsExpiredOnes() async throws {
        try await withRedis { redis, _ in
            let now = Atomic<UInt64>(1_000_000)
            let presence = Presence(redis: redis, ttlMilliseconds: 30_000, now: { now.load(ordering: .relaxed) })
            try await presence.register(userID: "alice", deviceID: "phone", gateNode: "g1:1")
            try await presence.register(userID: "alice", deviceID: "laptop", gateNode: "g2:1")
            try await presence.register(userID: "bob", deviceID: "phone", gateNode: "g1:1")
            var found = try await presence.locate(["alice", "bob", "nobody"])
            #expect(Set(found["alice"] ?? []) == [DeviceLocation(deviceID: "phone", gateNode: "g1:1"), DeviceLocation(deviceID: "laptop", gateNode: "g2:1")])
            #expect(found["nobody"] == nil)

            // Unregistering from a gate that no longer holds the device is ignored.
            try await presence.unregister(userID: "alice", deviceID: "phone", gateNode: "g9:9")
            #expect(try await presence.locate(["alice"])["alice"]?.count == 2)
            try await presence.unregister(userID: "alice", deviceID: "phone", gateNode: "g1:1")
            #expect(try await presence.locate(["alice"])["alice"] == [DeviceLocation(deviceID: "laptop", gateNode: "g2:1")])

            // Past the TTL without a heartbeat, a device is no longer located.
            now.store(1_000_000 + 31_000, ordering: .relaxed)
            found = try await presence.locate(["bob"])
            #expect(found["bob"] == nil)
        }
    }
}
