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

    /// A client written from docs/PROTOCOL.md pipelines 500 sends and a
    /// history request in one write: the answers come back in order, the
    /// sends commit in the order sent and together (far fewer transactions
    /// than sends), and the history answer already holds the last send.
    @Test func pipelinedSendsOnOneConnectionAreAnsweredInOrderAndCommittedTogether() async throws {
        try await LocalRegion.with { region in
            let bob = try await region.connect("bob")
            let count = 500
            let token = try await region.token(for: "alice")
            var bytes = RawConnection.framed(.with {
                $0.requestID = 1
                $0.auth = .with { $0.token = token; $0.deviceID = "raw" }
            })
            for index in 0..<count {
                bytes += RawConnection.framed(.with {
                    $0.requestID = UInt64(2 + index)
                    $0.send = .with { $0.clientMsgID = "p\(index)"; $0.toUser = "bob"; $0.body = "p\(index)" }
                })
            }
            bytes += RawConnection.framed(.with {
                $0.requestID = UInt64(2 + count)
                $0.history = .with { $0.conversationID = ConversationID.direct("alice", "bob"); $0.limit = 10 }
            })
            let frames = try await RawConnection.frames(port: region.tcpPort, after: bytes) { frames in
                frames.contains { $0.requestID == UInt64(2 + count) }
            }
            let answers = frames.filter { if case .push = $0.body { false } else { true } }
            #expect(answers.map(\.requestID) == Array(1...UInt64(2 + count)), "every answer, in request order")
            let acks = answers.compactMap { if case .sendAck(let ack) = $0.body { ack } else { nil } }
            #expect(acks.count == count, "\(answers.filter { if case .error = $0.body { true } else { false } }.prefix(3))")
            #expect(acks.map(\.clientMsgID) == (0..<count).map { "p\($0)" })
            let seqs = acks.map(\.event.seq)
            #expect(seqs == seqs.sorted() && Set(seqs).count == count, "committed in the order sent")
            if case .historyPage(let page) = answers.last?.body {
                #expect(page.messages.first?.messagePosted.body == "p\(count - 1)", "the read after the sends sees them")
            } else {
                Issue.record("expected a history page last, got \(String(describing: answers.last))")
            }
            // Each row's xmin is the transaction that wrote it.
            let transactions = Int(try region.postgres.psql(
                "SELECT count(DISTINCT xmin::text) FROM events WHERE origin = 'eu' AND seq BETWEEN \(seqs.first ?? 0) AND \(seqs.last ?? 0)"
            )) ?? .max
            #expect(transactions <= count / 5, "\(count) pipelined sends committed in \(transactions) transactions")
            #expect(await bob.inbox.wait { $0.count(ofMessage: "p\(count - 1)") == 1 })
            await bob.stop()
        }
    }

    /// A change after a read waits for the read; the changes after it must
    /// wait with it, not overtake it (they once went up the link at once and
    /// committed first).
    @Test func changesAfterAReadCommitInTheOrderSent() async throws {
        try await LocalRegion.with { region in
            let bob = try await region.connect("bob")
            let count = 50
            let token = try await region.token(for: "alice")
            var bytes = RawConnection.signIn(token: token)
            bytes += RawConnection.framed(.with {
                $0.requestID = 2
                $0.unread = .init()
            })
            for index in 0..<count {
                bytes += RawConnection.framed(.with {
                    $0.requestID = UInt64(3 + index)
                    $0.send = .with { $0.clientMsgID = "r\(index)"; $0.toUser = "bob"; $0.body = "r\(index)" }
                })
            }
            let frames = try await RawConnection.frames(port: region.tcpPort, after: bytes) { frames in
                frames.contains { $0.requestID == UInt64(2 + count) }
            }
            let acks = frames.compactMap { if case .sendAck(let ack) = $0.body { ack } else { nil } }
            #expect(acks.map(\.clientMsgID) == (0..<count).map { "r\($0)" }, "answered in order: \(frames.prefix(4))")
            let seqs = acks.map(\.event.seq)
            #expect(seqs == seqs.sorted() && Set(seqs).count == count, "committed in the order sent: \(seqs.prefix(5))")
            await bob.stop()
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

            // A retried create_group (same client_group_id) is the same group, created once.
            let created = try await alice.client.createGroup(name: "once", members: ["bob"], clientGroupID: "g1")
            let again = try await alice.client.createGroup(name: "once", members: ["bob"], clientGroupID: "g1")
            #expect(!created.duplicate && created.event.seq > 0)
            #expect(again.duplicate && again.groupID == created.groupID, "\(again)")
            #expect(try region.postgres.psql("SELECT count(*) FROM conversations WHERE is_group") == "1")
            #expect(try region.postgres.psql("SELECT count(*) FROM events WHERE kind = 4") == "1", "one group_created event")

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
