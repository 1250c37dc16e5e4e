import Foundation
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Testing

/// A whole region really running: Postgres, Redis, two logic processes and a gate.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ChatTests {
    @Test func chatOneToOneAndInGroupsOverTCPAndWebSocketThenCatchUpAfterBeingOffline() async throws {
        try await LocalRegion.with { region in
            let alice = try await region.connect("alice", via: .tcp)
            let bob = try await region.connect("bob", via: .webSocket)
            let carol = try await region.connect("carol", via: .tcp)

            // 1:1, TCP → WebSocket and back.
            let ack = try await alice.client.send(to: .user("bob"), body: "hi bob")
            #expect(ack.event.origin == "eu" && ack.event.seq > 0 && ack.hlc > 0 && !ack.duplicate)
            #expect(ack.conversationID == ConversationID.direct("alice", "bob"))
            #expect(await bob.inbox.wait { $0.containsMessage("hi bob") })
            _ = try await bob.client.send(to: .user("alice"), body: "hi alice")
            #expect(await alice.inbox.wait { $0.containsMessage("hi alice") })

            // A group of three.
            let group = try await alice.client.createGroup(name: "trio", members: ["bob", "carol"])
            _ = try await bob.client.send(to: .group(group.groupID), body: "hello trio")
            for user in [alice, carol] { #expect(await user.inbox.wait { $0.containsMessage("hello trio") }) }

            // Carol goes offline; messages keep coming; she reconnects with her cursor.
            let cursor = await carol.client.cursor
            await carol.stop()
            _ = try await alice.client.send(to: .group(group.groupID), body: "while away 1")
            _ = try await bob.client.send(to: .user("carol"), body: "while away 2")
            let back = try await region.connect("carol", via: .webSocket, cursor: cursor)
            #expect(await back.inbox.wait { $0.containsMessage("while away 1") && $0.containsMessage("while away 2") })
            let missed = await back.inbox.received
            #expect(missed.count(ofMessage: "hello trio") == 0, "nothing seen before the cursor comes again")
            #expect(missed.count(ofMessage: "while away 1") == 1 && missed.count(ofMessage: "while away 2") == 1)
            // Positions the returning device received are contiguous from its cursor.
            let seqs = missed.filter { $0.position.origin == "eu" }.map(\.position.userSeq)
            #expect(seqs == Array((cursor.vector["eu"] + 1)...(cursor.vector["eu"] + UInt64(seqs.count))))

            // Every device of alice's sees the same stream, including what she sent.
            let second = try await region.connect("alice", via: .webSocket, device: "d2")
            #expect(await second.inbox.wait { $0.containsMessage("while away 1") && $0.containsMessage("hi bob") })

            for user in [alice, bob, back, second] { await user.stop() }
        }
    }

    @Test func aRetriedSendIsStoredOnceAndConcurrentSendersKeepSeqDense() async throws {
        try await LocalRegion.with { region in
            let alice = try await region.connect("alice")
            let bob = try await region.connect("bob")
            let first = try await alice.client.send(to: .user("bob"), body: "only once", clientMsgID: "retry-1")
            let retry = try await alice.client.send(to: .user("bob"), body: "only once", clientMsgID: "retry-1")
            #expect(retry.duplicate && retry.messageID == first.messageID && retry.event == first.event)
            #expect(await bob.inbox.wait { $0.containsMessage("only once") })
            #expect(try region.postgres.psql("SELECT count(*) FROM messages WHERE body = 'only once'") == "1")

            // Twenty clients send at once through both logic instances.
            let senders = try await withThrowingTaskGroup(of: TestUser.self) { group in
                for index in 0..<20 { group.addTask { try await region.connect("s\(index)") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in senders {
                    group.addTask {
                        for round in 0..<10 { _ = try await sender.client.send(to: .user("bob"), body: "\(sender.id)-\(round)") }
                    }
                }
                try await group.waitForAll()
            }
            #expect(await bob.inbox.wait { events in events.filter { $0.event.messagePosted.body.hasPrefix("s") }.count == 200 })
            let received = await bob.inbox.received
            #expect(Set(received.map(\.position.userSeq)).count == received.count, "bob saw no event twice")
            let log = try region.postgres.psql("SELECT count(*), min(seq), max(seq) FROM events WHERE origin = 'eu'")
            let parts = log.split(separator: "|").map { Int($0)! }
            #expect(parts[0] == parts[2] && parts[1] == 1, "seq is dense: \(log)")
            for user in senders + [alice, bob] { await user.stop() }
        }
    }
}
