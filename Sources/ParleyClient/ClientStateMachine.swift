import ParleyCore
import ParleyProto

/// Every decision of the SDK, without I/O: which gate to try, when a
/// connection is dead, what a lost connection leads to, which pushed events
/// a device gets and when it must pull, whether a failed request or
/// reconnect is tried again and after how long. `ParleyClient` (an actor)
/// feeds it what happened (a sign-in, a frame, a tick, a loss) and performs
/// the action it returns; transcript tests drive it without sockets.
/// postgres-nio's `ConnectionStateMachine` is the model.
struct ClientStateMachine: Sendable {
    struct Settings: Sendable {
        var avoidLostRegionFor: Duration
        /// nil: twice the gate's heartbeat interval.
        var livenessTimeout: Duration?
        var reconnects: Bool
        var requestAttempts = 8
    }

    enum Connection: Equatable, Sendable {
        case disconnected
        case signingIn(id: UInt64, candidate: RegionDirectory.Candidate)
        case connected(id: UInt64, candidate: RegionDirectory.Candidate, heartbeat: Duration)

        var id: UInt64? {
            switch self {
            case .disconnected: nil
            case .signingIn(let id, _), .connected(let id, _, _): id
            }
        }
    }

    /// When a connection was lost, where from and why: the start of a failover.
    struct Loss: Equatable, Sendable {
        var at: ContinuousClock.Instant
        var region: String?
        var reason: String
    }

    let settings: Settings
    private(set) var connection = Connection.disconnected
    /// Set by `disconnect`: no reconnect, requests fail.
    private(set) var stopped = false
    private(set) var cursor: SyncCursor
    /// Per origin, the newest event this device wrote or received (presented at sign-in).
    private(set) var session = VersionVector()
    private(set) var recoveries: [ParleyClient.Recovery] = []
    private(set) var gapsPulled = 0
    private(set) var lastServerError: ClientError?
    /// Regions (or fixed gates) lost recently, tried last until the instant given.
    private var avoided: [String: ContinuousClock.Instant] = [:]
    private var lost: Loss?
    private var lastReceived: ContinuousClock.Instant
    private var lastHeartbeat: ContinuousClock.Instant
    private var syncing = false
    private var syncAgain = false
    /// Live pushes that arrived ahead of the cursor, by origin and user_seq:
    /// two logic instances push one user's events over two streams, so
    /// neighbours can cross on the way. Delivered, still live, once the gap
    /// before them fills; pulled for only if it stays open.
    private var ahead: [String: [UInt64: Parley_Push]] = [:]
    private var aheadCount = 0
    private var gapTimerSet = false
    /// How long a gap may stay open before the client pulls.
    static let reorderWait = Duration.milliseconds(20)
    static let maxAhead = 10_000

    init(settings: Settings, cursor: SyncCursor, now: ContinuousClock.Instant) {
        self.settings = settings
        self.cursor = cursor
        lastReceived = now
        lastHeartbeat = now
    }

    var region: String? {
        if case .connected(_, let candidate, _) = connection { return candidate.region }
        return nil
    }

    // MARK: - Connecting

    /// The gates to try, in order: recently lost regions last.
    mutating func order(_ candidates: [RegionDirectory.Candidate], now: ContinuousClock.Instant) -> [RegionDirectory.Candidate] {
        avoided = avoided.filter { $0.value > now }
        let lost = Set(avoided.keys)
        return candidates.filter { !lost.contains($0.regionKey) } + candidates.filter { lost.contains($0.regionKey) }
    }

    /// Whether a gate that failed to take the device is followed by the next
    /// one: not when the server refused the device itself (a bad token).
    func triesNextGate(after error: any Error) -> Bool {
        if let error = error as? ClientError { return error.code.isRetryable }
        return true
    }

    /// Forgets the regions lost earlier (`rehome`: go where route says first).
    mutating func forgetLostRegions() { avoided = [:] }

    /// `connect` was called: reconnecting is allowed again after a `disconnect`.
    mutating func startConnecting() { stopped = false }

    /// A transport to `candidate` is open and about to sign in.
    mutating func opened(_ id: UInt64, to candidate: RegionDirectory.Candidate, now: ContinuousClock.Instant) {
        connection = .signingIn(id: id, candidate: candidate)
        lastReceived = now
    }

    /// The gate accepted the sign-in; returns how often to tick the keep-alive.
    mutating func signedIn(_ id: UInt64, heartbeatIntervalMs: UInt32, now: ContinuousClock.Instant) -> Duration? {
        guard case .signingIn(id, let candidate) = connection else { return nil }
        let interval = Duration.milliseconds(Int64(max(200, heartbeatIntervalMs)))
        connection = .connected(id: id, candidate: candidate, heartbeat: interval)
        lastHeartbeat = now
        return min(interval, liveness(interval) / 4)
    }

    /// Signed in and re-synced: a failover in progress is over.
    mutating func caughtUp(now: ContinuousClock.Instant) {
        guard let lost else { return }
        recoveries.append(ParleyClient.Recovery(from: lost.region, to: region, reason: lost.reason, downtime: now - lost.at, at: now))
        self.lost = nil
    }

    /// The client itself closes the connection (rehome, disconnect, a failed
    /// sign-in); `stop` also ends reconnecting. Returns the connection closed, if any.
    mutating func drop(stop: Bool = false) -> UInt64? {
        if stop { stopped = true }
        defer { connection = .disconnected }
        return connection.id
    }

    enum AfterLoss: Equatable, Sendable {
        /// Not the current connection (a reader that ended late): nothing to do.
        case ignore
        /// Close it and fail its requests.
        case close(id: UInt64)
        /// Close it, fail its requests, and reconnect after a jitter of up to
        /// `jitter` (every client of a failed gate notices at once).
        case closeAndReconnect(id: UInt64, jitter: Duration)
    }

    /// The connection closed, failed, went silent or was told `going_away`.
    mutating func lost(_ id: UInt64, reason: String, now: ContinuousClock.Instant) -> AfterLoss {
        guard connection.id == id else { return .ignore }
        switch connection {
        case .signingIn(_, let candidate), .connected(_, let candidate, _):
            avoided[candidate.regionKey] = now + settings.avoidLostRegionFor
        case .disconnected:
            break
        }
        if lost == nil { lost = Loss(at: now, region: region, reason: reason) }
        connection = .disconnected
        return settings.reconnects && !stopped ? .closeAndReconnect(id: id, jitter: .milliseconds(200)) : .close(id: id)
    }

    // MARK: - Keep-alive

    enum Tick: Equatable, Sendable {
        /// Not the current connection any more: stop ticking.
        case stop
        case wait
        case sendHeartbeat
        /// Nothing received for too long: treat it as lost.
        case abandon(reason: String)
    }

    /// Called every keep-alive period of connection `id`.
    mutating func tick(_ id: UInt64, now: ContinuousClock.Instant) -> Tick {
        guard case .connected(id, _, let interval) = connection else { return .stop }
        let liveness = liveness(interval)
        if now - lastReceived > liveness { return .abandon(reason: "nothing received for \(liveness)") }
        if now - lastHeartbeat >= interval || now - lastReceived >= liveness / 2 {
            lastHeartbeat = now
            return .sendHeartbeat
        }
        return .wait
    }

    private func liveness(_ heartbeat: Duration) -> Duration { settings.livenessTimeout ?? heartbeat * 2 }

    // MARK: - Frames and events

    enum Inbound: Equatable, Sendable {
        /// The answer to request `requestID`.
        case answer(requestID: UInt64)
        /// New events for the device, in order.
        case deliver([ReceivedEvent])
        /// A pushed event arrived ahead of the cursor: ask `gapStillOpen`
        /// after this long, and pull if it is.
        case checkGapAfter(Duration)
        /// Another member's typing notice: ephemeral, outside the cursor.
        case typing(Parley_TypingNotice)
        /// The connection's token expired: present a fresh one before the deadline.
        case reauthRequired
        /// Nothing to do (a duplicate, a heartbeat echo, a connection-level error recorded).
        case none
    }

    /// A frame arrived on the current connection.
    mutating func received(_ frame: Parley_Frame, isAwaited: (UInt64) -> Bool, now: ContinuousClock.Instant) -> Inbound {
        lastReceived = now
        if frame.requestID != 0, isAwaited(frame.requestID) { return .answer(requestID: frame.requestID) }
        switch frame.body {
        case .push(let push): return accept(push, live: true)
        case .typingNotice(let notice): return .typing(notice)
        case .reauthRequired: return .reauthRequired
        case .error(let error): lastServerError = ClientError(error)
        default: break  // heartbeat echoes and answers to abandoned requests
        }
        return .none
    }

    /// An event from a push or a sync page: delivered once, in order per origin.
    mutating func accept(_ push: Parley_Push, live: Bool) -> Inbound {
        let origin = push.position.origin
        switch cursor.classify(origin: origin, userSeq: push.position.userSeq) {
        case .next:
            var delivered = [deliver(push, live: live)]
            // Pushes that were waiting for this one follow it, as the live pushes they were.
            while let waiting = ahead[origin]?.removeValue(forKey: cursor.vector[origin] + 1) {
                aheadCount -= 1
                delivered.append(deliver(waiting, live: true))
            }
            dropPassed(origin)
            return .deliver(delivered)
        case .duplicate:
            return .none
        case .gap:
            // A sync page never skips; only a live push can run ahead of the cursor.
            guard live else { return .none }
            if aheadCount < Self.maxAhead, ahead[origin]?[push.position.userSeq] == nil {
                ahead[origin, default: [:]][push.position.userSeq] = push
                aheadCount += 1
            }
            guard !gapTimerSet else { return .none }
            gapTimerSet = true
            return .checkGapAfter(Self.reorderWait)
        }
    }

    /// The reorder wait is over: true when a gap is still open (then pull).
    mutating func gapStillOpen() -> Bool {
        gapTimerSet = false
        guard aheadCount > 0 else { return false }
        gapsPulled += 1
        return true
    }

    private mutating func deliver(_ push: Parley_Push, live: Bool) -> ReceivedEvent {
        cursor.advance(origin: push.position.origin, userSeq: push.position.userSeq)
        saw(origin: push.event.origin, seq: push.event.seq)
        return ReceivedEvent(position: push.position, event: push.event, live: live)
    }

    /// Forgets waiting pushes the cursor has passed (a sync page delivered them).
    private mutating func dropPassed(_ origin: String) {
        guard let waiting = ahead[origin] else { return }
        let have = cursor.vector[origin]
        let kept = waiting.filter { $0.key > have }
        aheadCount -= waiting.count - kept.count
        ahead[origin] = kept.isEmpty ? nil : kept
    }

    /// An event this device wrote (its ack) or received.
    mutating func saw(origin: String, seq: UInt64) {
        if seq > session[origin] { session[origin] = seq }
    }

    // MARK: - Sync

    /// A pull is wanted; false when one is running (it makes one more pass).
    mutating func startSync() -> Bool {
        if syncing {
            syncAgain = true
            return false
        }
        syncing = true
        syncAgain = false
        return true
    }

    /// A pass reached the end of the log; true when another was asked for meanwhile.
    mutating func syncPassEnded() -> Bool {
        if syncAgain {
            syncAgain = false
            return true
        }
        syncing = false
        return false
    }

    /// The pull failed: the next one starts afresh.
    mutating func syncFailed() {
        syncing = false
        syncAgain = false
    }

    // MARK: - Retries

    enum Retry: Equatable, Sendable {
        case after(Duration)
        case giveUp
    }

    /// Whether a request that failed on its `attempt`-th try is tried again.
    /// A refusal the server means (`not_member`, …) is final; a lost
    /// connection, a timeout, `unavailable` are not. A send keeps its
    /// client_msg_id, so a retry is stored once.
    func retryRequest(after error: any Error, attempt: Int) -> Retry {
        if let wait = Self.rateLimitWait(error) {
            return attempt < settings.requestAttempts && !stopped ? .after(wait) : .giveUp
        }
        guard triesNextGate(after: error) else { return .giveUp }
        guard attempt < settings.requestAttempts, !stopped else { return .giveUp }
        return .after(Backoff.client.delay(afterFailures: attempt))
    }

    /// Whether a reconnect attempt is still wanted: not stopped, not connected.
    var wantsReconnect: Bool { !stopped && connection == .disconnected }

    /// Whether reconnecting goes on after its `failures`-th failed attempt.
    func retryReconnect(after error: any Error, failures: Int) -> Retry {
        if let wait = Self.rateLimitWait(error) {
            return wantsReconnect ? .after(max(wait, Backoff.client.delay(afterFailures: failures))) : .giveUp
        }
        guard triesNextGate(after: error) else { return .giveUp }
        guard wantsReconnect else { return .giveUp }
        return .after(Backoff.client.delay(afterFailures: failures))
    }
}

extension ClientStateMachine {
    /// A gate's request limit refused: the wait it named before the same
    /// request may pass (a typing notice refused for repeating names none).
    static func rateLimitWait(_ error: any Error) -> Duration? {
        guard let error = error as? ClientError, error.code == .rateLimited, let wait = error.retryAfterMilliseconds, wait > 0 else { return nil }
        return .milliseconds(Int64(min(wait, 60_000)))
    }
}

extension ClientErrorCode {
    /// Whether retrying the same request later can succeed.
    var isRetryable: Bool { self == .unavailable || self == .timeout || self == .internalError }
}

extension ClientError {
    /// An `Error` frame from the server: the same type the server threw.
    init(_ error: Parley_Error) {
        self.init(ClientErrorCode(rawValue: error.code), error.message, retryAfterMilliseconds: error.retryAfterMs > 0 ? error.retryAfterMs : nil)
    }
}

extension RegionDirectory.Candidate {
    /// What a lost connection puts aside: its region, or the gate itself without route.
    var regionKey: String { region ?? address.description }
}
