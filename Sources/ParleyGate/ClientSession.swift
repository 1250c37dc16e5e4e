import GRPCCore
import Logging
import NIOCore
import ParleyAuth
import ParleyCore
import ParleyPresence
import ParleyProto
import ParleyRPC
import ParleyWire
import ServiceContextModule
import Synchronization
import Tracing

/// The life of one client connection, the same over TCP and WebSocket:
/// authenticate the first frame, register presence, then forward each request
/// to logic and write its answer, until the peer leaves or breaks the protocol.
struct ClientSession: Sendable {
    let gate: GateContext
    let connection: GateConnection
    let transport: GateMetrics.Transport

    /// Serves the connection. `inbound` yields one frame payload at a time and
    /// throws `FrameError` for bytes that are not a frame; `write` sends
    /// encoded frames; `closeTransport` ends the connection, which also ends
    /// `inbound`. Returns when the connection is over.
    func serve<Inbound: AsyncSequence & Sendable>(
        inbound: Inbound,
        write: @escaping @Sendable ([ByteBuffer]) async throws -> Void,
        closeTransport: @escaping @Sendable () async -> Void
    ) async where Inbound.Element == ByteBuffer {
        // An evicted peer gets a second to take its last frame, then the transport ends.
        connection.onEviction {
            Task {
                try? await Task.sleep(for: .seconds(1))
                await closeTransport()
            }
        }
        let metrics = gate.metrics, transport = self.transport
        metrics.opened(transport)
        defer { metrics.closed(transport) }
        await withDiscardingTaskGroup { group in
            group.addTask {
                // The only writer: responses, pushes and a last error leave in
                // order, each batch with one flush.
                while let frames = await connection.outbox.next() {
                    metrics.writing(frames, on: transport)
                    do { try await write(frames.map { $0.encoded() }) } catch { break }
                }
                await closeTransport()
            }
            await readLoop(inbound)
            connection.finish()
        }
        if let identity = connection.identity, gate.registry.remove(connection) {
            try? await gate.presence.unregister(userID: identity.userID, deviceID: identity.deviceID, gateNode: gate.node)
        } else {
            gate.registry.remove(connection)
        }
    }

    private func readLoop<Inbound: AsyncSequence>(_ inbound: Inbound) async where Inbound.Element == ByteBuffer {
        var pipeline = RequestPipeline(session: self)
        do {
            for try await payload in inbound {
                gate.metrics.received(transport)
                connection.heard(at: WallClock.milliseconds())
                let frame: Parley_Frame
                do {
                    frame = try Parley_Frame.decode(payload)
                } catch {
                    await pipeline.drain()
                    return connection.close(with: error.clientError)
                }
                if connection.identity == nil {
                    guard case .auth(let auth) = frame.body else {
                        return connection.close(with: ClientError(.authRequired, "the first frame must be auth"), requestID: frame.requestID)
                    }
                    // Sign-ins are limited per client address, failed ones too; a refused
                    // one leaves the connection open for another `auth` after the wait.
                    if let address = connection.address,
                        let wait = await gate.limiter.admit([("ip:\(address)", gate.limits.signInsPerAddress)]) {
                        gate.metrics.signIn(.rateLimited)
                        connection.send(.error(Self.rateLimited(wait, "sign-ins from this address"), requestID: frame.requestID))
                        continue
                    }
                    guard await authenticate(auth, requestID: frame.requestID) else { return }
                    pipeline.deviceSession = Dictionary(auth.session.map { ($0.origin, $0.seq) }, uniquingKeysWith: max)
                } else {
                    await pipeline.submit(frame)
                }
            }
            await pipeline.drain()
        } catch let error as FrameError {
            await pipeline.drain()
            connection.close(with: error.clientError)
        } catch {
            // The transport failed or closed; nothing can be written any more.
            await pipeline.drain()
        }
    }

    /// The refusal of a request limit, with when the request may pass.
    static func rateLimited(_ wait: UInt64, _ what: String) -> ClientError {
        ClientError(.rateLimited, "too many \(what): retry after \(wait) ms", retryAfterMilliseconds: wait)
    }

    /// Whether the signed-in device may make one more request now: nil, or
    /// the refusal. Heartbeats pass free: they keep a limited device connected.
    fileprivate func admit(_ frame: Parley_Frame) async -> ClientError? {
        guard let identity = connection.identity else { return nil }
        if case .heartbeat = frame.body { return nil }
        let limits = gate.limits
        guard let wait = await gate.limiter.admit([
            ("d:\(identity.userID):\(identity.deviceID)", limits.perDevice), ("u:\(identity.userID)", limits.perUser),
        ]) else { return nil }
        return Self.rateLimited(wait, "requests")
    }

    private func authenticate(_ auth: Parley_Auth, requestID: UInt64) async -> Bool {
        let token: VerifiedToken
        do {
            token = try await gate.tokens.verify(auth.token)
        } catch .expired {
            gate.metrics.signIn(.tokenExpired)
            connection.close(with: ClientError(.tokenExpired, "token expired"), requestID: requestID)
            return false
        } catch {
            gate.metrics.signIn(.tokenInvalid)
            connection.close(with: ClientError(.tokenInvalid, "token is not valid"), requestID: requestID)
            return false
        }
        let userID = token.userID
        guard Naming.isValid(userID), Naming.isValid(auth.deviceID) else {
            gate.metrics.signIn(.tokenInvalid)
            connection.close(with: ClientError(.tokenInvalid, "user and device ids must be 1...64 of [A-Za-z0-9_.]"), requestID: requestID)
            return false
        }
        let identity = GateConnection.Identity(userID: userID, deviceID: auth.deviceID)
        // Logic registers the user on first sign-in; only then is the device reachable.
        guard var answer = await forward(Self.signInCall(token, device: auth.deviceID, requestID: requestID)) else {
            gate.metrics.signIn(.unavailable)
            connection.close(with: ClientError(.unavailable, "sign-in failed; try again"), requestID: requestID)
            return false
        }
        guard case .authOk = answer.body else {
            // Revoked (18), or a refusal of logic's: the device is told why.
            if case .error(let error) = answer.body, error.code == ClientErrorCode.tokenRevoked.rawValue {
                gate.metrics.signIn(.tokenRevoked)
                connection.close(with: ClientError(.tokenRevoked, error.message), requestID: requestID)
            } else {
                gate.metrics.signIn(.unavailable)
                connection.close(with: ClientError(.unavailable, "sign-in failed; try again"), requestID: requestID)
            }
            return false
        }
        gate.metrics.signIn(.ok)
        connection.tokenValid(token)
        if let replaced = gate.registry.bind(connection, to: identity) {
            replaced.close(with: ClientError(.authRequired, "this device connected again elsewhere"))
        }
        do {
            try await gate.presence.register(userID: userID, deviceID: auth.deviceID, gateNode: gate.node)
        } catch {
            gate.logger.warning("presence unavailable; device reachable by sync only", metadata: ["error": "\(error)"])
        }
        // Heartbeats are the gate's concern: often enough to beat its idle timeout.
        answer.authOk.heartbeatIntervalMs = UInt32(gate.heartbeatIntervalMilliseconds)
        answer.authOk.tokenExpiresAtMs = token.expiresAtMilliseconds
        connection.send(answer)
        return true
    }

    /// The call that asks logic to sign the device in (registering the user
    /// on first sign-in, refusing a revoked token).
    private static func signInCall(_ token: VerifiedToken, device: String, requestID: UInt64) -> Parley_ClientCall {
        var call = Parley_ClientCall()
        call.userID = token.userID
        call.deviceID = device
        call.tokenIssuedAtMs = token.issuedAtMilliseconds
        call.frame = .with {
            $0.requestID = requestID
            $0.auth = .with { $0.deviceID = device }
        }
        return call
    }

    /// `auth` on a signed-in connection: a fresh token for the same user and
    /// device extends it (docs/PROTOCOL.md, "Sessions and tokens"). A token
    /// that is not one changes nothing: the connection keeps the one it has.
    fileprivate func reauthenticate(_ auth: Parley_Auth, as identity: GateConnection.Identity, requestID: UInt64) async -> Parley_Frame {
        let token: VerifiedToken
        do {
            token = try await gate.tokens.verify(auth.token)
        } catch .expired {
            return .error(.tokenExpired, "this token expired too", requestID: requestID)
        } catch {
            return .error(.tokenInvalid, "token is not valid", requestID: requestID)
        }
        guard token.userID == identity.userID, auth.deviceID.isEmpty || auth.deviceID == identity.deviceID else {
            return .error(.tokenInvalid, "a fresh token must name the user and device this connection signed in as", requestID: requestID)
        }
        // Logic knows whether it was revoked.
        guard let answer = await forward(Self.signInCall(token, device: identity.deviceID, requestID: requestID)) else {
            return .error(.unavailable, "the token could not be checked; try again", requestID: requestID)
        }
        guard case .authOk = answer.body else { return answer }
        connection.tokenValid(token)
        return .with {
            $0.requestID = requestID
            $0.authOk = .with {
                $0.userID = identity.userID
                $0.region = gate.region
                $0.heartbeatIntervalMs = UInt32(gate.heartbeatIntervalMilliseconds)
                $0.tokenExpiresAtMs = token.expiresAtMilliseconds
            }
        }
    }

    /// The call logic answers for a request of the signed-in device, with
    /// the session the device presented at sign-in.
    fileprivate func call(for frame: Parley_Frame, deviceSession: [String: UInt64], trace: String) -> Parley_ClientCall? {
        guard let identity = connection.identity else { return nil }
        var call = Parley_ClientCall()
        call.traceParent = trace
        call.userID = identity.userID
        call.deviceID = identity.deviceID
        call.frame = frame
        call.session = deviceSession
        return call
    }

    /// The answer to one request of a signed-in device. `sent`: a pipelined
    /// change already on its way to the user's own logic instance; if that
    /// link is lost, the retry elsewhere first waits for `previous`, so
    /// retried changes still commit in the order they were sent.
    fileprivate func answer(
        _ frame: Parley_Frame, deviceSession: [String: UInt64], trace: String, sent: OneShot<Parley_Frame>? = nil,
        previous: Task<Void, Never>? = nil
    ) async -> Parley_Frame {
        guard let identity = connection.identity, let call = call(for: frame, deviceSession: deviceSession, trace: trace) else {
            return .error(.authRequired, "not signed in", requestID: frame.requestID)
        }
        if case .heartbeat = frame.body {
            try? await gate.presence.register(userID: identity.userID, deviceID: identity.deviceID, gateNode: gate.node)
            return frame
        }
        if case .auth(let auth) = frame.body {
            return await reauthenticate(auth, as: identity, requestID: frame.requestID)
        }
        do {
            if let sent {
                do {
                    return try await sent.value()
                } catch LinkError.down {
                    await previous?.value
                }
            }
            let started = ContinuousClock.now
            let answer = try await gate.logic.forward(call)
            gate.metrics.answered(after: (ContinuousClock.now - started).nanoseconds)
            return answer
        } catch {
            let refusal = ClientError(converting: error)
            gate.logger.warning("call to logic failed", metadata: ["error": "\(String(reflecting: refusal))"])
            return .error(refusal, requestID: frame.requestID)
        }
    }

    private func forward(_ call: Parley_ClientCall) async -> Parley_Frame? {
        do {
            return try await gate.logic.forward(call)
        } catch {
            gate.logger.warning("logic unreachable", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// One connection's requests on their way to logic. Answers leave in the
/// order the requests came. Consecutive changes (`Parley_Frame.isChange`) are
/// in flight together, up to `window`, and logic queues them for commit in
/// that order, so a client pipelining sends gets them committed together;
/// any other request (a read, a heartbeat) first waits for the requests
/// before it to be answered, and so sees what they changed.
///
/// A change goes up its link at once only when it cannot overtake anything:
/// when nothing is in flight, or when the request just before it is a change
/// that went up the same link at once (and so, by the same rule, every
/// request still in flight did). Otherwise it waits for the requests before
/// it to be answered: a change after a read, or after a change that went to
/// another instance while the writer's link was down.
private struct RequestPipeline {
    let session: ClientSession
    /// The latest requests, oldest first (finished ones too, up to `window`);
    /// each task ends once its answer is queued for writing, after the one before it.
    private var inFlight: [Task<Void, Never>] = []
    /// Requests submitted and not yet answered.
    private let unanswered = Unanswered()
    /// The link the request just before went up at once, if it did.
    private var lastSentOn: Int?
    /// What the device presented at sign-in (`Auth.session`), until a call took it.
    var deviceSession: [String: UInt64] = [:]
    static let window = 256

    init(session: ClientSession) { self.session = session }

    private final class Unanswered: Sendable {
        let count = Atomic<Int>(0)
    }

    /// Sends the request on its way; waits only while `window` requests are in flight.
    mutating func submit(_ frame: Parley_Frame) async {
        if case .heartbeat = frame.body {
            // Echoed at once, ahead of answers still pending: a slow request
            // (a commit waiting out the store's failover) must not make a live
            // connection look dead to its device (docs/PROTOCOL.md, "Sessions").
            let session = self.session
            Task { session.connection.send(await session.answer(frame, deviceSession: [:], trace: "")) }
            return
        }
        if inFlight.count >= Self.window { await inFlight.removeFirst().value }
        let previous = inFlight.last
        if let refusal = await session.admit(frame) {
            // Refused here, answered in its turn: answers keep the requests' order.
            let session = self.session
            lastSentOn = nil
            inFlight.append(Task {
                await previous?.value
                session.connection.send(.error(refusal, requestID: frame.requestID))
            })
            return
        }
        // The device's session goes with its first change or read that uses
        // it, alone: logic may hold that call until this region has the
        // device's earlier events, and what follows waits for it.
        let deviceSession = Self.usesSession(frame) ? self.deviceSession : [:]
        if !deviceSession.isEmpty { self.deviceSession = [:] }
        // A request's trace starts here and follows its call to logic (docs/OPERATIONS.md, "Traces").
        let span = Self.span(for: frame)
        let trace = span.map { TraceParent.of($0.context) } ?? ""
        var sent: OneShot<Parley_Frame>?
        var sentOn: Int?
        if frame.isChange, deviceSession.isEmpty, let call = session.call(for: frame, deviceSession: [:], trace: trace) {
            let link = session.gate.logic.changeLink(for: call.userID)
            if unanswered.count.load(ordering: .acquiring) == 0 || lastSentOn == link {
                sent = try? session.gate.logic.send(call, on: link)
                if sent != nil { sentOn = link }
            }
        }
        lastSentOn = sentOn
        unanswered.count.add(1, ordering: .relaxed)
        let session = self.session
        let unanswered = self.unanswered
        // A device signing itself out gets its answer, then the connection ends.
        let revokesItself = session.connection.revokesItself(frame)
        if revokesItself { session.connection.revokingItself(true) }
        inFlight.append(Task { [sent] in
            if sent == nil { await previous?.value }
            // Under the request's span: what is logged on its way carries its trace id.
            let answer = await ServiceContext.withValue(span?.context ?? .topLevel) {
                await session.answer(frame, deviceSession: deviceSession, trace: trace, sent: sent, previous: previous)
            }
            if sent != nil { await previous?.value }
            session.connection.send(answer)
            if let span {
                if case .error(let error) = answer.body {
                    span.attributes["parley.error"] = ClientErrorCode(rawValue: error.code).description
                    span.setStatus(.init(code: .error))
                }
                span.end()
            }
            if revokesItself {
                session.connection.revokingItself(false)
                if case .changeAck = answer.body { session.connection.close(with: GateConnection.signedOut) }
            }
            unanswered.count.subtract(1, ordering: .releasing)
        })
    }

    /// The gate's span of one request (none for heartbeats).
    private static func span(for frame: Parley_Frame) -> (any Span)? {
        guard let body = frame.body else { return nil }
        if case .heartbeat = body { return nil }
        let span = InstrumentationSystem.tracer.startAnySpan("gate.request", context: .topLevel, ofKind: .server)
        guard span.isRecording else { return nil }
        span.attributes["parley.request"] = frame.kindName
        return span
    }

    /// The requests logic holds for the device's session (see RequestHandler).
    private static func usesSession(_ frame: Parley_Frame) -> Bool {
        switch frame.body {
        case .history, .unread, .profileRequest: true
        default: frame.isChange
        }
    }

    /// Waits until every request in flight has its answer queued.
    mutating func drain() async {
        await inFlight.last?.value
        inFlight = []
    }
}

/// What every session of a gate shares.
struct GateContext: Sendable {
    let region: String
    let node: String
    let tokens: TokenAuthority
    let presence: Presence
    let registry: ConnectionRegistry
    let limits: GateLimits
    let limiter: RateLimiter
    let logic: LogicRouter
    let metrics: GateMetrics
    let heartbeatIntervalMilliseconds: UInt64
    let logger: Logger
}
