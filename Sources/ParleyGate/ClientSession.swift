import GRPCCore
import Logging
import NIOCore
import ParleyAuth
import ParleyCore
import ParleyPresence
import ParleyProto
import ParleyWire

/// The life of one client connection, the same over TCP and WebSocket:
/// authenticate the first frame, register presence, then forward each request
/// to logic and write its answer, until the peer leaves or breaks the protocol.
struct ClientSession: Sendable {
    let gate: GateContext
    let connection: GateConnection

    /// Serves the connection. `inbound` yields one frame payload at a time and
    /// throws `FrameError` for bytes that are not a frame; `write` sends
    /// encoded frames; `closeTransport` ends the connection, which also ends
    /// `inbound`. Returns when the connection is over.
    func serve<Inbound: AsyncSequence & Sendable>(
        inbound: Inbound,
        write: @escaping @Sendable ([ByteBuffer]) async throws -> Void,
        closeTransport: @escaping @Sendable () async -> Void
    ) async where Inbound.Element == ByteBuffer {
        await withDiscardingTaskGroup { group in
            group.addTask {
                // The only writer: responses, pushes and a last error leave in
                // order, each batch with one flush.
                while let frames = await connection.outbox.next() {
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
        do {
            for try await payload in inbound {
                connection.heard(at: WallClock.milliseconds())
                let frame: Parley_Frame
                do {
                    frame = try Parley_Frame.decode(payload)
                } catch {
                    return connection.close(with: error.clientError)
                }
                if connection.identity == nil {
                    guard case .auth(let auth) = frame.body else {
                        return connection.close(with: ClientError(.authRequired, "the first frame must be auth"), requestID: frame.requestID)
                    }
                    guard await authenticate(auth, requestID: frame.requestID) else { return }
                } else {
                    await handle(frame)
                }
            }
        } catch let error as FrameError {
            connection.close(with: error.clientError)
        } catch {
            // The transport failed or closed; nothing can be written any more.
        }
    }

    private func authenticate(_ auth: Parley_Auth, requestID: UInt64) async -> Bool {
        let userID: String
        do {
            userID = try await gate.tokens.verify(auth.token)
        } catch .expired {
            connection.close(with: ClientError(.tokenExpired, "token expired"), requestID: requestID)
            return false
        } catch {
            connection.close(with: ClientError(.tokenInvalid, "token is not valid"), requestID: requestID)
            return false
        }
        guard Naming.isValid(userID), Naming.isValid(auth.deviceID) else {
            connection.close(with: ClientError(.tokenInvalid, "user and device ids must be 1...64 of [A-Za-z0-9_.]"), requestID: requestID)
            return false
        }
        let identity = GateConnection.Identity(userID: userID, deviceID: auth.deviceID)
        // Logic registers the user on first sign-in; only then is the device reachable.
        var call = Parley_ClientCall()
        call.userID = userID
        call.deviceID = auth.deviceID
        call.frame = .with {
            $0.requestID = requestID
            $0.auth = .with { $0.deviceID = auth.deviceID }
        }
        guard var answer = await forward(call), case .authOk = answer.body else {
            connection.close(with: ClientError(.unavailable, "sign-in failed; try again"), requestID: requestID)
            return false
        }
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
        connection.send(answer)
        return true
    }

    private func handle(_ frame: Parley_Frame) async {
        guard let identity = connection.identity else { return }
        if case .heartbeat = frame.body {
            try? await gate.presence.register(userID: identity.userID, deviceID: identity.deviceID, gateNode: gate.node)
            return connection.send(frame)
        }
        if case .auth = frame.body {
            return connection.send(.error(.invalidRequest, "already authenticated", requestID: frame.requestID))
        }
        var call = Parley_ClientCall()
        call.userID = identity.userID
        call.deviceID = identity.deviceID
        call.frame = frame
        do {
            connection.send(try await gate.logic.forward(call))
        } catch let error as CallTimedOut {
            gate.logger.warning("logic did not answer in time", metadata: ["error": "\(error)"])
            connection.send(.error(.timeout, "no answer within \(error.timeout); it may have taken effect: retry", requestID: frame.requestID))
        } catch {
            gate.logger.warning("logic unreachable", metadata: ["error": "\(error)"])
            connection.send(.error(.unavailable, "no logic instance reachable; retry", requestID: frame.requestID))
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

/// What every session of a gate shares.
struct GateContext: Sendable {
    let node: String
    let tokens: TokenAuthority
    let presence: Presence
    let registry: ConnectionRegistry
    let logic: LogicRouter
    let heartbeatIntervalMilliseconds: UInt64
    let logger: Logger
}
