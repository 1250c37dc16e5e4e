import NIOCore
import ParleyAuth
import ParleyCore
import ParleyProto
import ParleyWire
import Synchronization

/// One client connection, whatever its transport: an outbox of frames that a
/// single writer drains to the socket, the time it was last heard from, and
/// who it is once authenticated.
final class GateConnection: Sendable {
    struct Identity: Hashable, Sendable {
        let userID: String
        let deviceID: String
    }

    let id: UInt64
    /// The client's IP address, as the transport saw it (nil: unknown).
    let address: String?
    /// When the connection was accepted (wall-clock milliseconds).
    let openedAt: UInt64
    /// Frames waiting for the socket; the writer takes them in batches.
    let outbox = BatchQueue<Parley_Frame>(maxBatch: 256)
    /// Frames that may wait: a peer that lets more pile up is evicted.
    let maxOutbox: Int
    /// Ends the transport at once, for a peer too slow to be told politely.
    private let abortTransport = Mutex<(@Sendable () -> Void)?>(nil)
    private let lastHeard: Atomic<UInt64>
    private let identityState = Mutex<Identity?>(nil)
    /// When the token it signed in (or last re-authenticated) with expires,
    /// and once told so, the deadline for a fresh one (0: not told);
    /// wall-clock milliseconds.
    private let token = Mutex<(expiresAt: UInt64, deadline: UInt64, issuedAt: UInt64)>((0, 0, 0))

    init(id: UInt64, address: String?, now: UInt64, maxOutbox: Int) {
        self.id = id
        self.address = address
        self.openedAt = now
        self.maxOutbox = maxOutbox
        self.lastHeard = Atomic(now)
    }

    var identity: Identity? { identityState.withLock { $0 } }

    func authenticated(as identity: Identity) {
        identityState.withLock { $0 = identity }
    }

    func heard(at now: UInt64) { lastHeard.store(now, ordering: .relaxed) }

    /// A valid token was presented: it holds until `expiresAt`.
    func tokenValid(_ verified: VerifiedToken) {
        token.withLock { $0 = (verified.expiresAtMilliseconds, 0, verified.issuedAtMilliseconds) }
    }

    /// Revocations of this very device's tokens the device asked for and
    /// has not had the answer to: its connection closes after that answer,
    /// not when the revocation's push passes (which may come first).
    private let revokingItself = Atomic<Int>(0)

    /// Whether `frame` signs this connection's own device out.
    func revokesItself(_ frame: Parley_Frame) -> Bool {
        guard case .revokeTokens(let revoke) = frame.body, let identity else { return false }
        return revoke.deviceID.isEmpty || revoke.deviceID == identity.deviceID
    }

    func revokingItself(_ starting: Bool) {
        revokingItself.add(starting ? 1 : -1, ordering: .relaxed)
    }

    /// The revocation's push reached the connection: it ends now, unless the
    /// device itself asked and will be closed after its answer.
    func revoked(by revoked: Parley_TokensRevoked) {
        guard isRevoked(by: revoked), revokingItself.load(ordering: .relaxed) == 0 else { return }
        close(with: Self.signedOut)
    }

    static let signedOut = ClientError(.tokenRevoked, "signed out: this token was revoked")

    /// Whether this revocation, of the user's tokens for a device or all,
    /// covers the token the connection holds.
    func isRevoked(by revoked: Parley_TokensRevoked) -> Bool {
        guard let identity, revoked.userID == identity.userID, revoked.deviceID.isEmpty || revoked.deviceID == identity.deviceID else { return false }
        return token.withLock { $0.issuedAt < revoked.beforeMs }
    }

    /// What the token's clock asks of this connection at `now`: to be told
    /// (once) that a fresh token is due by `deadline`, or to be closed.
    enum TokenDue { case none, reauth(deadline: UInt64), expired }

    func tokenDue(now: UInt64, grace: UInt64) -> TokenDue {
        token.withLock { token in
            guard token.expiresAt > 0, now >= token.expiresAt else { return .none }
            if token.deadline == 0 {
                token.deadline = now + grace
                return .reauth(deadline: token.deadline)
            }
            return now >= token.deadline ? .expired : .none
        }
    }

    func silentFor(now: UInt64) -> UInt64 {
        let last = lastHeard.load(ordering: .relaxed)
        return now > last ? now - last : 0
    }

    /// Queues a frame for the socket; a peer with `maxOutbox` frames still
    /// unread is evicted instead (docs/PROTOCOL.md, code 16): its pushes
    /// would otherwise pile up in the gate's memory without bound.
    func send(_ frame: Parley_Frame) {
        if !outbox.push(frame, ifFewerThan: maxOutbox) { evict() }
    }

    /// How the transport is ended when the peer must be evicted.
    func onEviction(_ abort: @escaping @Sendable () -> Void) {
        abortTransport.withLock { $0 = abort }
    }

    /// The peer reads too slowly: what waits for it is dropped, `slow_consumer`
    /// is the last frame offered, and the transport ends shortly after even if
    /// the peer never reads it. The device reconnects and syncs what it missed.
    private func evict() {
        let error = ClientError(.slowConsumer, "more than \(maxOutbox) frames unread: reconnect and sync")
        guard outbox.replaceAndClose(with: .error(error, requestID: 0)) else { return }
        abortTransport.withLock { $0 }?()
    }

    /// Sends a last error (answering `requestID`, or unprompted with 0) and
    /// ends the connection once it is written.
    func close(with error: ClientError, requestID: UInt64 = 0) {
        outbox.push(.error(error, requestID: requestID))
        outbox.close()
    }

    /// Ends the connection after whatever is already queued.
    func finish() { outbox.close() }
}
