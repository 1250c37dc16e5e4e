import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ParleyCore
import ParleyProto
import ParleyWire
import Synchronization

/// The HTTP long-poll transport (docs/PROTOCOL.md, "Long-poll"): for clients
/// that can hold no socket. A session is a connection like a TCP one, served
/// by the same `ClientSession`, whose two directions are HTTP requests:
/// `POST /lp/send` carries request frames up, `GET /lp/poll` takes the
/// frames waiting for the device, held until there are some or the hold
/// time passes. Each frame down has a sequence number; a poll names the last
/// one it has (`after`), so an answer lost on the way is sent again.
final class LongPollSessions: Sendable {
    private let sessions = Mutex<[String: LongPollSession]>([:])
    let gate: GateContext
    let maxFrameSize: Int
    /// The longest a poll is held with nothing to send.
    let hold: Duration

    init(gate: GateContext, maxFrameSize: Int, hold: Duration) {
        self.gate = gate
        self.maxFrameSize = maxFrameSize
        self.hold = hold
    }

    /// Largest request body: a window of pipelined frames at the frame limit.
    var maxBody: Int { (maxFrameSize + 4) * 64 }

    var count: Int { sessions.withLock { $0.count } }

    /// A new session, served until its connection ends, then forgotten
    /// once its last frames had time to be polled.
    func open(from address: String?) -> LongPollSession {
        let session = LongPollSession(connection: gate.registry.open(now: WallClock.milliseconds(), address: address))
        sessions.withLock { $0[session.id] = session }
        let gate = self.gate, hold = self.hold
        Task {
            await ClientSession(gate: gate, connection: session.connection, transport: .longPoll).serve(
                inbound: session.inbound,
                write: { frames in session.deliver(frames) },
                closeTransport: { session.end() }
            )
            session.end()
            try? await Task.sleep(for: hold * 2)
            _ = self.sessions.withLock { $0.removeValue(forKey: session.id) }
        }
        return session
    }

    func session(_ id: String) -> LongPollSession? { sessions.withLock { $0[id] } }

    /// Routes on the gate's HTTP listener.
    func register(on router: Router<GateHTTPContext>) {
        router.post("/lp/send") { request, context -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: self.maxBody)
            } catch {
                return Self.answer(.contentTooLarge, [.error(ClientError(.frameTooLarge, "a long-poll body holds at most \(self.maxBody) bytes"))])
            }
            let session: LongPollSession
            if let id = request.headers[.parleySession] {
                guard let known = self.session(id) else { return Self.over }
                session = known
            } else {
                session = self.open(from: context.remoteAddress?.ipAddress)
            }
            session.connection.heard(at: WallClock.milliseconds())
            session.receive(body, maxFrameSize: self.maxFrameSize)
            var headers = HTTPFields()
            headers[.parleySession] = session.id
            return Response(status: .accepted, headers: headers)
        }
        router.post("/lp/close") { request, _ -> Response in
            // The device is leaving: end the session as a closed socket would.
            if let id = request.headers[.parleySession], let session = self.session(id) { session.connection.finish() }
            return Response(status: .noContent)
        }
        router.get("/lp/poll") { request, _ -> Response in
            guard let id = request.headers[.parleySession], let session = self.session(id) else { return Self.over }
            let after = request.uri.queryParameters["after"].flatMap { UInt64($0) } ?? 0
            let wait = request.uri.queryParameters["wait_ms"].flatMap { Int64($0) }.map { Duration.milliseconds($0) }
            let (frames, last, over) = await session.poll(after: after, hold: min(wait ?? self.hold, self.hold))
            if frames.isEmpty && over { return Self.over }
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            headers[.parleyLast] = "\(last)"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: Self.framed(frames)))
        }
    }

    /// The session is over (or never was): connect again.
    private static var over: Response { Response(status: .gone) }

    private static func answer(_ status: HTTPResponse.Status, _ frames: [Parley_Frame]) -> Response {
        Response(status: status, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: framed(frames.map { $0.encoded() })))
    }

    /// A body of length-prefixed frames, as over TCP.
    private static func framed(_ payloads: [ByteBuffer]) -> ByteBuffer {
        var body = ByteBuffer()
        for payload in payloads { FrameEncoder.append(payload, to: &body) }
        return body
    }
}

/// One long-poll session: the frames the device sent, on their way into
/// its `ClientSession`, and the frames for the device, kept until a poll
/// says it has them.
final class LongPollSession: Sendable {
    let id: String
    let connection: GateConnection
    let inbound: AsyncThrowingStream<ByteBuffer, any Error>
    private let received: AsyncThrowingStream<ByteBuffer, any Error>.Continuation

    private struct Outbox {
        var frames: [(seq: UInt64, payload: ByteBuffer)] = []
        var lastSeq: UInt64 = 0
        var over = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0

        mutating func wake() -> [CheckedContinuation<Void, Never>] {
            let woken = Array(waiters.values)
            waiters = [:]
            return woken
        }
    }

    private let outbox = Mutex(Outbox())

    init(connection: GateConnection) {
        // 128 random bits: the session id is the only thing that names the device's connection.
        id = (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max)) }.joined()
        self.connection = connection
        (inbound, received) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
    }

    /// A request body: length-prefixed frames, as over TCP. Bytes that are
    /// not frames end the session with the error a TCP connection gets.
    func receive(_ body: ByteBuffer, maxFrameSize: Int) {
        var body = body
        do {
            while let frame = try FrameDecoder.nextFrame(from: &body, maxFrameSize: maxFrameSize) { received.yield(frame) }
        } catch {
            return received.finish(throwing: error)
        }
        // A body ends with a whole frame: anything left is a cut frame.
        if body.readableBytes > 0 { received.finish(throwing: FrameError.malformed) }
    }

    func deliver(_ frames: [ByteBuffer]) {
        let waiters = outbox.withLock { box in
            for frame in frames {
                box.lastSeq += 1
                box.frames.append((box.lastSeq, frame))
            }
            return box.wake()
        }
        for waiter in waiters { waiter.resume() }
    }

    func end() {
        received.finish()
        let waiters = outbox.withLock { box in
            box.over = true
            return box.wake()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The frames after `after` (dropping those before: the device has
    /// them), waiting up to `hold` for one; the last sequence number sent;
    /// whether the session is over.
    func poll(after: UInt64, hold: Duration) async -> (frames: [ByteBuffer], last: UInt64, over: Bool) {
        connection.heard(at: WallClock.milliseconds())
        let deadline = ContinuousClock.now + hold
        while true {
            let (ready, waiter) = outbox.withLock { box -> ((frames: [ByteBuffer], last: UInt64, over: Bool)?, UInt64?) in
                box.frames.removeAll { $0.seq <= after }
                if !box.frames.isEmpty || box.over || ContinuousClock.now >= deadline {
                    return ((box.frames.map(\.payload), box.frames.last?.seq ?? max(after, 0), box.over), nil)
                }
                box.nextWaiter += 1
                return (nil, box.nextWaiter)
            }
            if let ready { return ready }
            guard let waiter else { continue }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.outbox.withLock { box -> Bool in
                            if !box.frames.isEmpty || box.over { return true }
                            box.waiters[waiter] = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                }
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    let continuation = self.outbox.withLock { $0.waiters.removeValue(forKey: waiter) }
                    continuation?.resume()
                }
                await group.next()
                group.cancelAll()
            }
            connection.heard(at: WallClock.milliseconds())
        }
    }
}

extension HTTPField.Name {
    /// The long-poll session a request belongs to.
    static let parleySession = Self("Parley-Session")!
    /// The sequence number of the last frame in a poll's answer.
    static let parleyLast = Self("Parley-Last")!
}
