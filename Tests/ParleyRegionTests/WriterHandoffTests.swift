import Foundation
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import Testing

/// One committing writer per origin: the gate sends changes to the first
/// logic instance, the second hands it the changes it gets (sign-ins), both
/// commit themselves while the first is gone, and changes go to it again
/// once it is back (docs/ARCHITECTURE.md, "One writer per origin").
@Suite(.serialized, .timeLimit(.minutes(3))) struct WriterHandoffTests {
    @Test func changesReachTheWriterAndCommitElsewhereWhileItIsDown() async throws {
        try await LocalRegion.with { region in
            // Enough users that both instances are some user's home.
            var users: [TestUser] = []
            for index in 0..<8 { users.append(try await region.connect("w\(index)")) }
            let handedOver = "handing changes to the writer"
            let committedHere = "committing changes here"
            #expect(region.logic[1].log.contains(handedOver), "sign-ins of logic1's users went to the writer:\n\(region.logic[1].log.suffix(2000))")
            #expect(!region.logic[1].log.contains(committedHere))

            func round(_ label: String) async throws {
                for (index, user) in users.enumerated() {
                    let ack = try await user.client.send(to: .user(users[(index + 1) % users.count].id), body: "\(label) \(index)")
                    #expect(!ack.messageID.isEmpty)
                }
                for (index, user) in users.enumerated() {
                    let from = (index + users.count - 1) % users.count
                    #expect(await user.inbox.wait { $0.containsMessage("\(label) \(from)") }, "\(user.id) got \(label) \(from)")
                }
            }
            try await round("writer up")

            await region.killLogic(0)
            try await round("writer down")
            #expect(region.logic[1].log.contains(committedHere), "with the writer gone logic1 commits:\n\(region.logic[1].log.suffix(2000))")

            let toWriter = "sending changes to the writer"
            let gateLog = region.gate?.log ?? ""
            #expect(gateLog.contains("the writer's link is down"), "\(gateLog.suffix(2000))")
            try await region.startLogic(0)
            // The gate's link to the writer comes back after its backoff; every send meanwhile commits somewhere.
            var attempt = 0
            let resumed = try await eventually {
                attempt += 1
                try await round("writer back \(attempt)")
                return (region.gate?.log ?? "").components(separatedBy: toWriter).count - 1 >= 2
            }
            #expect(resumed, "the gate sends changes to the writer again:\n\((region.gate?.log ?? "").suffix(2000))")

            // Every message stored once, and eu's log dense through it all.
            let received = await users[1].inbox.received
            for label in ["writer up 0", "writer down 0"] { #expect(received.count(ofMessage: label) == 1, "\(label) once") }
            #expect(try region.postgres.psql("SELECT count(*) = max(seq) AND min(seq) = 1 FROM events WHERE origin = 'eu'") == "t")
            #expect(try region.postgres.psql("SELECT count(*) FROM messages") == String(8 * (2 + attempt)))
            for user in users { await user.stop() }
        }
    }

    /// A writer that shuts down ends its links cleanly; the instances (and
    /// gates) linked to it notice at once and link to its successor, so the
    /// first changes after its restart are answered, not lost with a link
    /// that only looked up.
    @Test func theFirstChangesAfterTheWriterRestartsAreAnswered() async throws {
        try await LocalRegion.with { region in
            let sink = try await region.connect("sink")
            let users = (0..<8).map { "r\($0)" }
            func sendOnce(_ label: String) async throws -> [Parley_Frame] {
                try await withThrowingTaskGroup(of: Parley_Frame?.self) { group in
                    for user in users {
                        let token = try await region.token(for: user)
                        group.addTask {
                            let bytes = RawConnection.signIn(token: token) + RawConnection.framed(.with {
                                $0.requestID = 2
                                $0.send = .with { $0.toUser = "sink"; $0.clientMsgID = label; $0.body = "\(user) \(label)" }
                            })
                            let frames = try await RawConnection.frames(port: region.tcpPort, after: bytes) { frames in
                                frames.contains { $0.requestID == 2 }
                            }
                            return frames.first { $0.requestID == 2 }
                        }
                    }
                    return try await group.reduce(into: []) { if let frame = $1 { $0.append(frame) } }
                }
            }
            let before = try await sendOnce("before")
            #expect(before.count == users.count && before.allSatisfy { $0.sendAck.event.origin == "eu" }, "\(before)")
            #expect(region.logic[1].log.contains("handing changes to the writer"))
            await region.stopLogic(0)
            try await region.startLogic(0)
            let after = try await sendOnce("after")
            #expect(after.count == users.count && after.allSatisfy { $0.sendAck.event.origin == "eu" }, "answered, not refused: \(after)")
            await sink.stop()
        }
    }

    /// Pipelined sends are answered in the order they were sent and commit
    /// in that order, whichever instance is their sender's home.
    @Test func pipelinedSendsCommitInOrderThroughTheHandoff() async throws {
        try await LocalRegion.with { region in
            let sink = try await region.connect("sink")
            let senders = (0..<4).map { "p\($0)" }
            let count = 200
            let answers = try await withThrowingTaskGroup(of: (String, [Parley_Frame]).self) { group in
                for sender in senders {
                    let token = try await region.token(for: sender)
                    group.addTask {
                        var bytes = RawConnection.signIn(token: token)
                        for index in 0..<count {
                            bytes += RawConnection.framed(.with {
                                $0.requestID = UInt64(index + 2)
                                $0.send = .with { $0.toUser = "sink"; $0.clientMsgID = "\(sender)-\(index)"; $0.body = "\(sender) \(index)" }
                            })
                        }
                        let frames = try await RawConnection.frames(port: region.tcpPort, after: bytes) { frames in
                            frames.filter { $0.requestID > 0 }.count == count + 1
                        }
                        return (sender, frames.filter { $0.requestID > 0 })
                    }
                }
                return try await group.reduce(into: [String: [Parley_Frame]]()) { $0[$1.0] = $1.1 }
            }
            #expect(region.logic[1].log.contains("handing changes to the writer"), "some sender's home is logic1")
            for sender in senders {
                let frames = answers[sender] ?? []
                #expect(frames.map(\.requestID) == (1...UInt64(count + 1)).map { $0 }, "\(sender): answers in request order")
                let seqs = frames.dropFirst().map { $0.sendAck.event.seq }
                #expect(seqs.count == count && frames.dropFirst().allSatisfy { $0.sendAck.event.origin == "eu" }, "\(sender): every send acked")
                #expect(seqs == seqs.sorted() && Set(seqs).count == count, "\(sender): committed in the order sent")
            }
            #expect(try region.postgres.psql("SELECT count(*) = max(seq) FROM events WHERE origin = 'eu'") == "t")
            #expect(await sink.inbox.wait { events in senders.allSatisfy { events.containsMessage("\($0) \(count - 1)") } })
            await sink.stop()
        }
    }
}
