import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ParleyCore
import ParleyProto
import ParleyWire

/// The HTTP long-poll transport of docs/PROTOCOL.md ("Long-poll"), for
/// places where no socket can be held: frames go up in `POST /lp/send`
/// bodies (the first one opens the session), and come down in the answers
/// to `GET /lp/poll`, each poll naming the last frame it has, so a lost
/// answer is sent again. The frames are exactly those of TCP. Each
/// direction has its own keep-alive HTTP/1.1 connection.
enum LongPollTransport {
    /// How long a request may go unanswered: the gate holds a poll up to 15 s.
    static let answerDeadline = TimeAmount.seconds(30)

    static func open(url: String, tls: ClientTLS?) throws -> FrameTransport {
        let target = try Target(url, tls: tls)
        let (inbound, received) = AsyncThrowingStream<Parley_Frame, any Error>.makeStream()
        let (outgoing, outbound) = AsyncStream<Parley_Frame>.makeStream()
        Task {
            let queue = BatchQueue<Parley_Frame>(maxBatch: 256)
            let session = SessionID()
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await frame in outgoing { _ = queue.push(frame) }
                        queue.close()
                    }
                    // Frames go up in order, one POST at a time, as many per POST as are waiting.
                    @Sendable func sendLane() async throws {
                        try await HTTPLane.with(target) { lane in
                            while let frames = await queue.next() {
                                var body = ByteBuffer()
                                for frame in frames { FrameEncoder.append(frame.encoded(), to: &body) }
                                let answer = try await lane.exchange(.POST, "\(target.path)/send", session: await session.value, body: body)
                                guard answer.status == 202, let id = answer.headers.first(name: "Parley-Session") else {
                                    throw ClientConnectionError.closed("long-poll send answered \(answer.status)")
                                }
                                await session.set(id)
                            }
                            if let id = await session.value { _ = try? await lane.exchange(.POST, "\(target.path)/close", session: id, body: nil) }
                        }
                    }
                    group.addTask {
                        do {
                            try await sendLane()
                        } catch {
                            // The poll lane waits for a session that will never open: it ends with why.
                            await session.failed(error)
                            throw error
                        }
                        throw CancellationError()  // local close: stop polling too
                    }
                    group.addTask {
                        guard let id = await session.opened() else {
                            if let failure = await session.failure { throw failure }
                            return
                        }
                        var after: UInt64 = 0
                        var failures = 0
                        while true {
                            do {
                                try await HTTPLane.with(target, deadline: answerDeadline) { lane in
                                    while true {
                                        let answer = try await lane.exchange(.GET, "\(target.path)/poll?after=\(after)", session: id, body: nil)
                                        if answer.status == 410 { throw SessionOver() }
                                        guard answer.status == 200, let last = answer.headers.first(name: "Parley-Last").flatMap({ UInt64($0) }) else {
                                            throw ClientConnectionError.closed("long-poll poll answered \(answer.status)")
                                        }
                                        var body = answer.body
                                        while let payload = try FrameDecoder.nextFrame(from: &body, maxFrameSize: FrameTransport.maxInboundFrame) {
                                            received.yield(try Parley_Frame.decodeAny(payload))
                                        }
                                        guard body.readableBytes == 0 else { throw ClientConnectionError.closed("long-poll answer cut short") }
                                        after = last
                                        failures = 0
                                    }
                                }
                            } catch is SessionOver {
                                return
                            } catch let error as ClientConnectionError {
                                throw error
                            } catch {
                                // The connection broke: ask again for the same frames, then give up.
                                failures += 1
                                if failures > 2 { throw error }
                                try await Task.sleep(for: .milliseconds(200))
                            }
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
                received.finish()
            } catch is CancellationError {
                received.finish()
            } catch {
                received.finish(throwing: error)
            }
            await session.set(nil)
        }
        return FrameTransport(inbound: inbound, outbound: outbound)
    }

    private struct SessionOver: Error {}
    /// The connection ended before the answer did (retried on a new one).
    private struct LaneClosed: Error {}

    /// `http://host:port/path`, or `https://` with `tls`.
    struct Target: Sendable {
        let host: String
        let port: Int
        let path: String
        let tls: ClientTLS?

        init(_ url: String, tls: ClientTLS?) throws {
            guard let components = URLComponents(string: url), components.scheme == (tls == nil ? "http" : "https"), let host = components.host else {
                throw ClientConnectionError.closed("not an http:// or https:// long-poll URL: \(url)")
            }
            self.host = host
            self.tls = tls
            port = components.port ?? (tls == nil ? 80 : 443)
            path = components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path
        }
    }

    /// One keep-alive HTTP/1.1 connection, one request at a time.
    struct HTTPLane {
        let target: Target
        let writer: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
        var parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator

        struct Answer {
            var status: Int
            var headers: HTTPHeaders
            var body: ByteBuffer
        }

        /// `deadline`: the connection closes when nothing arrives for that long
        /// (the poll lane; a gate gone silent ends the transport instead of holding it).
        static func with(_ target: Target, deadline: TimeAmount? = nil, _ body: (inout HTTPLane) async throws -> Void) async throws {
            let channel = try await ClientBootstrap(group: .singletonMultiThreadedEventLoopGroup)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(3))
                .connect(host: target.host, port: target.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls = target.tls { try channel.pipeline.syncOperations.addHandler(try tls.handler(host: target.host)) }
                        if let deadline {
                            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: deadline))
                            try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
            try await channel.executeThenClose { inbound, outbound in
                var lane = HTTPLane(target: target, writer: outbound, parts: inbound.makeAsyncIterator())
                try await body(&lane)
            }
        }

        mutating func exchange(_ method: HTTPMethod, _ uri: String, session: String?, body: ByteBuffer?) async throws -> Answer {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
            head.headers.add(name: "Host", value: "\(target.host):\(target.port)")
            if let session { head.headers.add(name: "Parley-Session", value: session) }
            if let body {
                head.headers.add(name: "Content-Type", value: "application/octet-stream")
                head.headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            }
            try await writer.write(.head(head))
            if let body { try await writer.write(.body(.byteBuffer(body))) }
            try await writer.write(.end(nil))
            var answer = Answer(status: 0, headers: [:], body: ByteBuffer())
            while let part = try await parts.next() {
                switch part {
                case .head(let head):
                    answer.status = Int(head.status.code)
                    answer.headers = head.headers
                case .body(var chunk):
                    answer.body.writeBuffer(&chunk)
                case .end:
                    return answer
                }
            }
            throw LaneClosed()
        }
    }

    private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
        }
    }

    /// The session id, once the first send has opened it.
    private actor SessionID {
        private(set) var value: String?
        private var waiters: [CheckedContinuation<String?, Never>] = []
        private var ended = false
        /// Why the session could not open, when it failed.
        private(set) var failure: (any Error)?

        func set(_ id: String?) {
            if let id { value = id } else { ended = true }
            for waiter in waiters { waiter.resume(returning: id) }
            waiters = []
        }

        func failed(_ error: any Error) {
            if value == nil { failure = error }
            set(nil)
        }

        func opened() async -> String? {
            if let value { return value }
            if ended { return nil }
            return await withCheckedContinuation { waiters.append($0) }
        }
    }
}
