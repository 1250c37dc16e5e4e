import Foundation
import NIOCore
import NIOPosix
import ParleyClient
import ParleyCore
import ParleyProbe
import ParleyProto
import ParleyTestSupport
import ParleyWire
import Testing

/// The gate's limits on every input (docs/PROTOCOL.md, "Limits"): requests
/// per device and per user, sign-ins and connections per client address.
@Suite(.serialized, .timeLimit(.minutes(4))) struct RateLimitTests {
    @Test func aDeviceOverItsLimitIsToldWhenToRetryItsUserSharesOneBucketAndOthersKeepTheirPace() async throws {
        // A device: 30 requests at once, then 10 a second. Its user, over all devices: 50, then 1 a second.
        try await LocalRegion.with(gateArguments: [
            "--device-requests-per-second=10", "--device-request-burst=30",
            "--user-requests-per-second=1", "--user-request-burst=50",
        ]) { region in
            let calm = try await region.connect("calm")
            _ = try await region.connect("peer")
            func calmSends(_ label: String, count: Int) async throws -> [Duration] {
                var times: [Duration] = []
                for index in 0..<count {
                    let start = ContinuousClock.now
                    _ = try await calm.client.send(to: .user("peer"), body: "\(label) \(index)")
                    times.append(.now - start)
                }
                return times
            }
            let before = try await calmSends("before", count: 10)

            // One device of the flooder pipelines 30 batches of 100 sends, one batch every
            // 100 ms, and reads every answer; the calm user sends meanwhile.
            let flooder = try await FloodConnection.open(port: region.tcpPort, token: try await region.token(for: "flooder"), device: "a")
            async let during = calmSends("during", count: 20)
            let answers = try await flooder.sendAndRead(batches: 30, of: 100, every: .milliseconds(100), firstID: 2)
            let calmDuring = try await during

            let outOfOrder = zip(answers.map(\.requestID), 2..<3_002).first { $0.0 != $0.1 }
            #expect(answers.count == 3_000 && outOfOrder == nil, "one answer per request, in the order sent; first out of order: \(String(describing: outOfOrder))")
            let acked = answers.filter { if case .sendAck = $0.body { true } else { false } }.count
            let refusals = answers.compactMap { frame -> Parley_Error? in if case .error(let error) = frame.body { error } else { nil } }
            #expect(acked + refusals.count == 3_000)
            #expect(acked >= 30 && acked <= 60, "the burst, then the user's 1/s and the device's 10/s: \(acked) acknowledged")
            #expect(refusals.allSatisfy { $0.code == ClientErrorCode.rateLimited.rawValue && (1...10_000).contains($0.retryAfterMs) },
                    "\(refusals.prefix(3))")

            // Its other device draws on the same user bucket: it has far fewer than its own 30.
            let second = try await FloodConnection.open(port: region.tcpPort, token: try await region.token(for: "flooder"), device: "b")
            let secondAnswers = try await second.sendAndRead(batches: 1, of: 100, every: .zero, firstID: 2)
            let secondAcked = secondAnswers.filter { if case .sendAck = $0.body { true } else { false } }.count
            #expect(secondAcked < 30, "the user's bucket, shared by its devices and the region's gates: \(secondAcked) acknowledged")
            guard case .error(let last) = secondAnswers.last?.body else {
                Issue.record("the last of 100 sends was not refused: \(String(describing: secondAnswers.last))")
                return
            }
            // After the wait it was told, the same device sends again.
            try await Task.sleep(for: .milliseconds(Int64(last.retryAfterMs)))
            let retried = try await second.sendAndRead(batches: 1, of: 1, every: .zero, firstID: 200)
            #expect({ if case .sendAck = retried.first?.body { true } else { false } }(), "\(retried)")
            await flooder.close()
            await second.close()

            // The calm user was never refused and kept its pace.
            #expect(calmDuring.count == 20)
            let median = { (times: [Duration]) in times.sorted()[times.count / 2] }
            #expect(median(calmDuring) <= median(before) * 3 + .milliseconds(200),
                    "calm's median send went from \(median(before)) to \(median(calmDuring)) during the flood")
        }
    }

    /// Many requests finding no token at once wait for one lease instead of
    /// each draining the shared bucket (which refused sign-ins well within
    /// the limit before).
    @Test func aCrowdSigningInAtOnceWithinTheLimitIsAllAdmitted() async throws {
        try await LocalRegion.with(gateArguments: ["--sign-ins-per-address-per-second=1000", "--sign-in-burst-per-address=1000"]) { region in
            let tokens = try await (0..<200).asyncMap { try await region.token(for: "crowd\($0)") }
            let refusals = try await withThrowingTaskGroup(of: String?.self) { group in
                for token in tokens {
                    group.addTask {
                        let connection = try await FloodConnection.connect(port: region.tcpPort)
                        let answer = try await connection.signIn(token: token, device: "d")
                        await connection.close()
                        if case .authOk = answer.body { return nil }
                        return "\(answer)"
                    }
                }
                return try await group.reduce(into: [String]()) { if let refusal = $1 { $0.append(refusal) } }
            }
            #expect(refusals.isEmpty, "\(refusals.count) of 200 sign-ins refused within a limit of 1,000 at once: \(refusals.prefix(3))")
        }
    }

    @Test func signInsAndConnectionsPerAddressAreCapped() async throws {
        try await LocalRegion.with(gateArguments: [
            "--sign-ins-per-address-per-second=1", "--sign-in-burst-per-address=3", "--max-connections-per-address=5",
            "--auth-timeout-ms=120000",
        ]) { region in
            // Three sign-ins pass at once; the fourth from the same address is told when to retry,
            // and its connection stays open for that retry.
            var open: [FloodConnection] = []
            for user in ["s1", "s2", "s3"] {
                open.append(try await FloodConnection.open(port: region.tcpPort, token: try await region.token(for: user), device: "d"))
            }
            let fourth = try await FloodConnection.connect(port: region.tcpPort)
            let refused = try await fourth.signIn(token: try await region.token(for: "s4"), device: "d")
            guard case .error(let error) = refused.body else {
                Issue.record("the fourth sign-in was not refused: \(refused)")
                return
            }
            #expect(error.code == ClientErrorCode.rateLimited.rawValue && error.retryAfterMs > 0 && error.retryAfterMs <= 1_000)
            try await Task.sleep(for: .milliseconds(Int64(error.retryAfterMs)))
            let accepted = try await fourth.signIn(token: try await region.token(for: "s4"), device: "d")
            #expect({ if case .authOk = accepted.body { true } else { false } }(), "\(accepted)")
            open.append(fourth)

            // With one more, not signed in, five connections from this address are open;
            // a sixth is refused with 17 and closed.
            open.append(try await FloodConnection.connect(port: region.tcpPort))
            let sixth = try await FloodConnection.connect(port: region.tcpPort)
            let last = try await sixth.framesUntilClosed()
            #expect(last.map(\.error.code) == [ClientErrorCode.tooManyConnections.rawValue], "\(last)")
            // One closes; a new one is accepted (its first frame gets an answer, not a refusal).
            await open.removeLast().close()
            #expect(try await eventually(.seconds(20)) {
                let next = try await FloodConnection.connect(port: region.tcpPort)
                defer { Task { await next.close() } }
                guard let answer = try? await next.signIn(token: try await region.token(for: "s5"), device: "d") else { return false }
                if case .error(let error) = answer.body, error.code == ClientErrorCode.rateLimited.rawValue {
                    return false  // the connection was taken; the sign-in budget refills at 1/s
                }
                return { if case .authOk = answer.body { true } else { false } }()
            })
            for connection in open { await connection.close() }
        }
    }
}

/// A raw TCP connection to a gate that writes frames and reads answers at
/// the same time, so a flood of answers never waits on a full socket.
private final class FloodConnection: Sendable {
    private let channel: any Channel
    private let frames: Frames

    /// The answers, read by one test task at a time.
    private final class Frames: @unchecked Sendable {
        var iterator: AsyncThrowingStream<Parley_Frame, any Error>.Iterator
        init(_ stream: AsyncThrowingStream<Parley_Frame, any Error>) { iterator = stream.makeAsyncIterator() }
    }

    /// Hands each decoded frame to the stream; its end when the gate closes.
    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncThrowingStream<Parley_Frame, any Error>.Continuation
        init(_ continuation: AsyncThrowingStream<Parley_Frame, any Error>.Continuation) { self.continuation = continuation }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            do { continuation.yield(try Parley_Frame.decode(unwrapInboundIn(data))) } catch { continuation.finish(throwing: error) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            continuation.finish(throwing: error)
            context.close(promise: nil)
        }
    }

    private init(channel: any Channel, frames: AsyncThrowingStream<Parley_Frame, any Error>) {
        self.channel = channel
        self.frames = Frames(frames)
    }

    static func connect(port: Int) async throws -> FloodConnection {
        let (stream, continuation) = AsyncThrowingStream<Parley_Frame, any Error>.makeStream()
        let channel = try await ClientBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 24)))
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return FloodConnection(channel: channel, frames: stream)
    }

    /// Connected and signed in.
    static func open(port: Int, token: String, device: String) async throws -> FloodConnection {
        let connection = try await connect(port: port)
        let answer = try await connection.signIn(token: token, device: device)
        guard case .authOk = answer.body else { throw TestSupportError("sign-in refused: \(answer)") }
        return connection
    }

    /// Sends `auth` (request 1) and returns its answer. A push may come
    /// first (a user's registration, at its first sign-in: docs/PROTOCOL.md,
    /// "Conversation"), so frames are read until the one answering request 1.
    func signIn(token: String, device: String) async throws -> Parley_Frame {
        try await channel.writeAndFlush(ByteBuffer(bytes: RawConnection.signIn(token: token, device: device)))
        while true {
            let frame = try await next()
            if case .push = frame.body, frame.requestID == 0 { continue }
            return frame
        }
    }

    /// Writes `batches` of `count` sends (request ids from `firstID`), one
    /// batch per `interval`, and returns every answer.
    func sendAndRead(batches: Int, of count: Int, every interval: Duration, firstID: UInt64) async throws -> [Parley_Frame] {
        let channel = self.channel
        let writing = Task {
            for batch in 0..<batches {
                var bytes: [UInt8] = []
                for index in 0..<count {
                    let id = firstID + UInt64(batch * count + index)
                    bytes += RawConnection.framed(.with {
                        $0.requestID = id
                        $0.send = .with { $0.clientMsgID = "flood-\(id)-\(UUID().uuidString.prefix(8))"; $0.toUser = "peer"; $0.body = "flood \(id)" }
                    })
                }
                try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
                if interval > .zero { try await Task.sleep(for: interval) }
            }
        }
        // Pushes (request id 0: the device's own sends, echoed to the user's devices) are not answers.
        var answers: [Parley_Frame] = []
        while answers.count < batches * count {
            let frame = try await next()
            if frame.requestID != 0 { answers.append(frame) }
        }
        try await writing.value
        return answers
    }

    /// Every frame until the gate closes the connection.
    func framesUntilClosed() async throws -> [Parley_Frame] {
        var frames: [Parley_Frame] = []
        while let frame = try await withDeadline(.seconds(30), "the gate closing the connection", { try await self.frames.iterator.next() }) {
            frames.append(frame)
        }
        return frames
    }

    private func next() async throws -> Parley_Frame {
        guard let frame = try await withDeadline(.seconds(60), "an answer from the gate", { try await self.frames.iterator.next() }) else {
            throw TestSupportError("the gate closed the connection")
        }
        return frame
    }

    func close() async {
        try? await channel.close()
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
