import Logging
import ParleyCore
import ParleyProto
import ParleyWire

/// The Parley client SDK: one device of one user.
///
/// ```swift
/// let client = ParleyClient(configuration: .init(gates: [.tcp(host: "127.0.0.1", port: 7100)],
///                                                token: token, deviceID: "phone"))
/// try await client.connect()
/// let ack = try await client.send(to: .user("bob"), body: "hi")
/// for await received in client.events { print(received.event) }
/// ```
///
/// The client keeps a cursor `{origin: user_seq}` of what it has received,
/// delivers every event exactly once and in order per origin, pulls whatever a
/// gap in the pushes reveals, reconnects with backoff when the connection
/// drops, and re-syncs from its cursor. Sends carry a `client_msg_id` and are
/// retried with the same id, so a retry is stored once.
///
/// Failover: with `routes`, the client asks `parley route` which regions to
/// use (keeping its last answer for when no route instance answers) and
/// connects to the first that takes it. A connection that closes, goes
/// silent past `livenessTimeout`, or is told `going_away` is abandoned: its
/// region goes last for `avoidLostRegionFor` and the client moves on with the
/// same token, re-syncs from its cursor and resends unacknowledged requests
/// with the same `client_msg_id`. Reconnect attempts back off with jitter.
public actor ParleyClient {
    public enum Transport: Sendable { case tcp, webSocket, longPoll }

    public struct Configuration: Sendable {
        /// Gates to use when no `routes` are given or none has ever answered.
        public var gates: [GateAddress]
        public var token: String
        public var deviceID: String
        /// `parley route` instances (`host:port` or `http://host:port`), asked in order.
        public var routes: [String] = []
        /// Sent to route: a region to prefer, and where the device is.
        public var regionHint: String?
        public var location: GeoLocation?
        /// Which of a routed region's gates to use.
        public var transport: Transport = .tcp
        /// A PEM file of the authorities that sign the gates' certificates
        /// (the cluster's `ca.pem`); nil: the system's trusted authorities.
        /// Used for `tls://`, `wss://` and `https://` gates.
        public var certificateAuthority: String?
        public var routeTimeout: Duration = .seconds(1)
        public var requestTimeout: Duration = .seconds(10)
        /// How long signing in to a gate may take before the next is tried.
        public var signInTimeout: Duration = .seconds(3)
        /// A connection with nothing received for this long is dead (a
        /// partition sends no reset); nil: twice the gate's heartbeat interval.
        /// Heartbeats go out whenever half of it has passed in silence.
        public var livenessTimeout: Duration?
        /// A region (or fixed gate) whose connection was lost is tried last for this long.
        public var avoidLostRegionFor: Duration = .seconds(30)
        /// Where a fresh token comes from: asked when the gate says the
        /// connection's token expired (`reauth_required`, docs/PROTOCOL.md,
        /// "Sessions and tokens") and before signing in again with an expired
        /// one. Nil: a connection ends when its token expires.
        public var freshToken: (@Sendable () async throws -> String)?
        /// Reconnect (and re-sync) on its own after the connection drops.
        public var reconnects = true
        public var syncPageSize: UInt32 = 500
        public var logger = Logger(label: "parley.client")

        public init(gates: [GateAddress] = [], routes: [String] = [], token: String, deviceID: String) {
            self.gates = gates
            self.routes = routes
            self.token = token
            self.deviceID = deviceID
        }
    }

    /// One failover: the connection was lost and the client was back, signed
    /// in and re-synced, `downtime` later.
    public struct Recovery: Sendable {
        public let from: String?
        public let to: String?
        public let reason: String
        public let downtime: Duration
        /// When the client was back.
        public let at: ContinuousClock.Instant
    }

    public enum Recipient: Sendable, Hashable {
        case user(String)
        case group(String)
    }

    /// Every event that concerns this user, once each, in order per origin.
    public nonisolated let events: AsyncStream<ReceivedEvent>
    private let emit: AsyncStream<ReceivedEvent>.Continuation
    /// Other members' typing notices as they arrive (never stored, never synced).
    public nonisolated let typingNotices: AsyncStream<Parley_TypingNotice>
    private let emitTyping: AsyncStream<Parley_TypingNotice>.Continuation

    public let configuration: Configuration
    /// Every decision (failover, liveness, delivery, retries); this actor only performs them.
    private var machine: ClientStateMachine
    public var cursor: SyncCursor { machine.cursor }
    public private(set) var userID: String?
    /// The last connection-level error the server sent before closing.
    public var lastServerError: ClientError? { machine.lastServerError }
    /// How many times a gap in pushes made the client pull.
    public var gapsPulled: Int { machine.gapsPulled }
    /// The region of the current connection (nil without route or when not connected).
    public var region: String? { machine.region }
    /// Every loss of connection and how long the client took to recover, oldest first.
    public var recoveries: [Recovery] { machine.recoveries }
    /// Per origin, the newest event this device has written or received:
    /// presented at every sign-in, so the region it lands in applies its
    /// writes after those (docs/REPLICATION.md, "Session guarantees").
    public var session: VersionVector { machine.session }

    /// The I/O of the current connection; its state is the machine's.
    private var connection: Connection?
    private var connecting: Task<Parley_AuthOk, any Error>?
    private var nextRequestID: UInt64 = 1
    private var pending: [UInt64: CheckedContinuation<Parley_Frame, any Error>] = [:]
    private let directory: RegionDirectory
    private var lastRouteAnswer: [RegionDirectory.Candidate]?
    /// The token signed in with, and when it expires (0: unknown).
    private var token: String
    private var tokenExpiresAtMs: UInt64 = 0

    private struct Connection {
        let id: UInt64
        let transport: FrameTransport
        let reader: Task<Void, Never>
        var keepAlive: Task<Void, Never>?
    }

    public init(configuration: Configuration, cursor: SyncCursor = SyncCursor()) {
        self.configuration = configuration
        self.token = configuration.token
        machine = ClientStateMachine(
            settings: .init(
                avoidLostRegionFor: configuration.avoidLostRegionFor, livenessTimeout: configuration.livenessTimeout,
                reconnects: configuration.reconnects
            ),
            cursor: cursor, now: .now
        )
        directory = RegionDirectory(configuration: configuration)
        (events, emit) = AsyncStream.makeStream()
        (typingNotices, emitTyping) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(256))
    }

    public var isConnected: Bool { connection != nil }

    /// Connects, authenticates and syncs everything missed since the cursor.
    @discardableResult
    public func connect() async throws -> Parley_AuthOk {
        machine.startConnecting()
        if let connecting { return try await connecting.value }
        let task = Task { try await self.openConnectionWaitingOutLimits() }
        connecting = task
        defer { connecting = nil }
        let ok = try await task.value
        try await sync()
        machine.caughtUp(now: .now)
        return ok
    }

    /// Reconnects to the region route now puts first, forgetting the regions
    /// this device lost earlier: after a failover a device stays where it
    /// landed until told to go home (its own region healthy again). Requests
    /// in flight are resent on the new connection, sends with their `client_msg_id`.
    public func rehome() async throws {
        machine.forgetLostRegions()
        drop(reason: "rehoming")
        try await connect()
    }

    /// Closes the connection and stops reconnecting.
    public func disconnect() {
        drop(reason: "closed by the client", stop: true)
    }

    /// Sends a message; a retry (also after a reconnect, to any region)
    /// keeps `clientMsgID`, so it is stored once.
    /// `attachment`: media by reference (the body is then an optional
    /// caption); `replyTo`: a message of the same conversation; `mentions`:
    /// members of the group to notify even where they muted it.
    public func send(
        to recipient: Recipient, body: String, clientMsgID: String = ParleyClient.newClientMsgID(),
        durability: Parley_Durability = .default, attachment: Parley_Attachment? = nil, replyTo: String = "", mentions: [String] = []
    ) async throws -> Parley_SendAck {
        let frame = Parley_Frame.with {
            $0.send = .with {
                $0.clientMsgID = clientMsgID
                $0.body = body
                $0.durability = durability
                if let attachment { $0.attachment = attachment }
                $0.replyTo = replyTo
                $0.mentions = mentions
                switch recipient {
                case .user(let user): $0.toUser = user
                case .group(let group): $0.groupID = group
                }
            }
        }
        return try await requestWithRetry(frame).sendAck
    }

    public func markRead(conversationID: String, messageID: String) async throws -> Parley_ReadAck {
        try await requestWithRetry(.with {
            $0.markRead = .with {
                $0.conversationID = conversationID
                $0.messageID = messageID
            }
        }).readAck
    }

    /// Creates a group. Retried like a send, with the same `clientGroupID`:
    /// a retry after a lost answer is answered with the same group.
    public func createGroup(
        name: String, members: [String], clientGroupID: String = ParleyClient.newClientMsgID()
    ) async throws -> Parley_GroupCreatedAck {
        try await requestWithRetry(.with {
            $0.createGroup = .with {
                $0.name = name
                $0.members = members
                $0.clientGroupID = clientGroupID
            }
        }).groupCreated
    }

    public func history(conversationID: String, before messageID: String = "", limit: UInt32 = 50) async throws -> Parley_HistoryPage {
        try await requestWithRetry(.with {
            $0.history = .with {
                $0.conversationID = conversationID
                $0.beforeMessageID = messageID
                $0.limit = limit
            }
        }).historyPage
    }

    /// Replaces the body of one of this user's messages.
    public func edit(messageID: String, body: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.edit = .with {
                $0.messageID = messageID
                $0.body = body
            }
        }).changeAck
    }

    /// Recalls one of this user's messages (or any message of a group this user owns).
    public func recall(messageID: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with { $0.recall = .with { $0.messageID = messageID } }).changeAck
    }

    public func addMember(_ userID: String, to groupID: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.addMember = .with {
                $0.groupID = groupID
                $0.userID = userID
            }
        }).changeAck
    }

    public func removeMember(_ userID: String, from groupID: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.removeMember = .with {
                $0.groupID = groupID
                $0.userID = userID
            }
        }).changeAck
    }

    public func setProfile(_ field: String, to value: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.setProfile = .with {
                $0.field = field
                $0.value = value
            }
        }).changeAck
    }

    /// This device's push token (empty: no more notifications while offline).
    public func registerPush(token: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with { $0.registerPush = .with { $0.token = token } }).changeAck
    }

    /// Mutes or unmutes a conversation's notifications ("" for all conversations).
    public func mute(_ conversationID: String, _ muted: Bool = true) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.mute = .with {
                $0.conversationID = conversationID
                $0.muted = muted
            }
        }).changeAck
    }

    public func profile(of userID: String) async throws -> [String: String] {
        try await requestWithRetry(.with { $0.profileRequest = .with { $0.userID = userID } }).profile.fields
    }

    public func unreadCounts() async throws -> [String: UInt64] {
        try await requestWithRetry(.with { $0.unread = Parley_UnreadRequest() }).unreadCounts.byConversation
    }

    /// Pulls every event after the cursor, page by page. A pull asked for
    /// while one runs makes it go round once more.
    public func sync() async throws {
        guard machine.startSync() else { return }
        do {
            repeat {
                var more = true
                while more {
                    let batch = try await request(.with {
                        $0.sync = .with { request in
                            request.limit = configuration.syncPageSize
                            request.cursor = cursor.vector.origins.map { origin in
                                .with { $0.origin = origin; $0.userSeq = cursor.vector[origin] }
                            }
                        }
                    }).syncBatch
                    for push in batch.events { perform(machine.accept(push, live: false)) }
                    more = batch.more && !batch.events.isEmpty
                }
            } while machine.syncPassEnded()
        } catch {
            machine.syncFailed()
            throw error
        }
    }

    /// Sends one request frame and waits for its answer. An `Error` answer throws `ClientError`.
    public func request(_ frame: Parley_Frame) async throws -> Parley_Frame {
        guard let connection else { throw ClientConnectionError.notConnected }
        let answer = try await exchange(frame, on: connection.transport)
        if case .error(let error) = answer.body { throw ClientError(error) }
        switch answer.body {
        case .sendAck(let ack): saw(ack.event)
        case .readAck(let ack): saw(ack.event)
        case .changeAck(let ack): saw(ack.event)
        case .groupCreated(let ack): saw(ack.event)
        default: break
        }
        return answer
    }

    /// Adds an event this device wrote to its session.
    private func saw(_ event: Parley_EventId) { machine.saw(origin: event.origin, seq: event.seq) }

    public static func newClientMsgID() -> String {
        let high = UInt64.random(in: 0...UInt64.max)
        let low = UInt64.random(in: 0...UInt64.max)
        return String(high, radix: 36) + String(low, radix: 36)
    }

    // MARK: - Connection

    /// `openConnection`, again after the wait a gate names when its limit on
    /// sign-ins from this address refused (`rate_limited`).
    private func openConnectionWaitingOutLimits() async throws -> Parley_AuthOk {
        var attempt = 0
        while true {
            do {
                return try await openConnection()
            } catch {
                attempt += 1
                guard ClientStateMachine.rateLimitWait(error) != nil, case .after(let wait) = machine.retryRequest(after: error, attempt: attempt) else {
                    throw error
                }
                try await Task.sleep(for: wait)
            }
        }
    }

    private func openConnection() async throws -> Parley_AuthOk {
        drop(reason: "reconnecting")
        var lastError: any Error = ClientConnectionError.notConnected
        for candidate in await candidates() {
            do {
                return try await open(candidate)
            } catch {
                guard machine.triesNextGate(after: error) else { throw error }
                configuration.logger.debug("gate refused", metadata: ["gate": "\(candidate.address)", "error": "\(error)"])
                lastError = error
            }
        }
        throw lastError
    }

    /// The gates to try in order: route's answer (or its last one), else the
    /// fixed gates; recently lost regions last.
    private func candidates() async -> [RegionDirectory.Candidate] {
        var list = directory.fixedCandidates
        if !directory.routes.isEmpty {
            if let answer = await directory.ask(), !answer.isEmpty { lastRouteAnswer = answer }
            if let lastRouteAnswer { list = lastRouteAnswer }
        }
        return machine.order(list, now: .now)
    }

    private static let connectionIDs = ConnectionIDs()

    /// Built on the first TLS connection and kept: a reconnect storm should
    /// not read the authority's file once per device and attempt.
    private var tls: ClientTLS?

    private func clientTLS() throws -> ClientTLS {
        if let tls { return tls }
        let built = try ClientTLS(trusting: configuration.certificateAuthority)
        tls = built
        return built
    }

    private func open(_ candidate: RegionDirectory.Candidate) async throws -> Parley_AuthOk {
        let transport = try await FrameTransport.connect(
            to: candidate.address, tls: candidate.address.usesTLS ? try clientTLS() : nil, logger: configuration.logger
        )
        let id = Self.connectionIDs.next()
        let reader = Task { await self.read(transport, connectionID: id) }
        connection = Connection(id: id, transport: transport, reader: reader)
        machine.opened(id, to: candidate, now: .now)
        let answer: Parley_Frame
        do {
            if let freshToken = configuration.freshToken, tokenExpiresAtMs != 0, WallClock.milliseconds() >= tokenExpiresAtMs {
                token = try await freshToken()
            }
            answer = try await exchange(.with {
                $0.auth = .with {
                    $0.token = token
                    $0.deviceID = configuration.deviceID
                    $0.session = session.origins.map { origin in .with { $0.origin = origin; $0.seq = session[origin] } }
                }
            }, on: transport, timeout: configuration.signInTimeout)
        } catch {
            drop(reason: "sign-in failed")
            throw error
        }
        if case .error(let error) = answer.body {
            drop(reason: "sign-in refused")
            throw ClientError(error)
        }
        let ok = answer.authOk
        guard let tick = machine.signedIn(id, heartbeatIntervalMs: ok.heartbeatIntervalMs, now: .now) else {
            throw ClientConnectionError.closed("lost while signing in")
        }
        userID = ok.userID
        tokenExpiresAtMs = ok.tokenExpiresAtMs
        connection?.keepAlive = Task { await self.keepAlive(id, tick: tick) }
        return ok
    }

    /// The gate asked for a fresh token: signs the open connection in again
    /// with one, or lets it end (with `token_expired`) when there is none.
    private func reauthenticate() async {
        guard let freshToken = configuration.freshToken else {
            configuration.logger.warning("the token expired and no freshToken is configured: the gate will close the connection")
            return
        }
        do {
            token = try await freshToken()
            let answer = try await request(.with {
                $0.auth = .with {
                    $0.token = token
                    $0.deviceID = configuration.deviceID
                }
            })
            tokenExpiresAtMs = answer.authOk.tokenExpiresAtMs
        } catch {
            configuration.logger.warning("re-authentication failed", metadata: ["error": "\(error)"])
        }
    }

    /// Ticks the machine's keep-alive for connection `id`: heartbeats, and
    /// abandoning a connection that stays silent.
    private func keepAlive(_ id: UInt64, tick: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            switch machine.tick(id, now: .now) {
            case .stop: return
            case .wait: continue
            case .sendHeartbeat: connection?.transport.send(.with { $0.heartbeat = .with { $0.clientTimeMs = WallClock.milliseconds() } })
            case .abandon(let reason): return connectionLost(id, reason: reason)
            }
        }
    }

    private func read(_ transport: FrameTransport, connectionID: UInt64) async {
        var reason = "closed by the server"
        do {
            for try await frame in transport.inbound {
                guard connection?.id == connectionID else { break }
                perform(machine.received(frame, isAwaited: { self.pending[$0] != nil }, now: .now), frame)
            }
        } catch {
            reason = "\(error)"
        }
        connectionLost(connectionID, reason: reason)
    }

    private func perform(_ inbound: ClientStateMachine.Inbound, _ frame: Parley_Frame? = nil) {
        switch inbound {
        case .answer(let requestID): if let frame { pending.removeValue(forKey: requestID)?.resume(returning: frame) }
        case .deliver(let events): for event in events { emit.yield(event) }
        case .checkGapAfter(let wait): Task { await self.pullIfGapStillOpen(after: wait) }
        case .typing(let notice): emitTyping.yield(notice)
        case .reauthRequired: Task { await self.reauthenticate() }
        case .none: break
        }
    }

    /// Pulls what a gap in the pushes is missing, unless the pushes filled it meanwhile.
    private func pullIfGapStillOpen(after wait: Duration) async {
        try? await Task.sleep(for: wait)
        if machine.gapStillOpen() { try? await sync() }
    }

    private func connectionLost(_ connectionID: UInt64, reason: String) {
        switch machine.lost(connectionID, reason: reason, now: .now) {
        case .ignore:
            return
        case .close:
            close(reason: reason)
        case .closeAndReconnect(_, let jitter):
            close(reason: reason)
            Task { await self.reconnectWithBackoff(jitter: jitter) }
        }
    }

    /// The client closes its connection; `stop` also ends reconnecting.
    private func drop(reason: String, stop: Bool = false) {
        _ = machine.drop(stop: stop)
        close(reason: reason)
    }

    /// Closes the transport and fails the requests waiting on it.
    private func close(reason: String) {
        guard let connection else { return }
        self.connection = nil
        connection.keepAlive?.cancel()
        connection.transport.close()
        let waiters = pending
        pending = [:]
        for waiter in waiters.values { waiter.resume(throwing: ClientConnectionError.closed(reason)) }
    }

    private func reconnectWithBackoff(jitter: Duration) async {
        try? await Task.sleep(for: jitter * Double.random(in: 0...1))
        var failures = 0
        while machine.wantsReconnect {
            do {
                try await connect()
                return
            } catch {
                failures += 1
                switch machine.retryReconnect(after: error, failures: failures) {
                case .giveUp:
                    configuration.logger.error("reconnecting stopped", metadata: ["error": "\(error)"])
                    return
                case .after(let delay):
                    try? await Task.sleep(for: delay)
                }
            }
        }
    }

    // MARK: - Requests

    private func exchange(_ frame: Parley_Frame, on transport: FrameTransport, timeout: Duration? = nil) async throws -> Parley_Frame {
        var frame = frame
        let id = nextRequestID
        nextRequestID += 1
        frame.requestID = id
        let timeout = timeout ?? configuration.requestTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.expire(id)
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { waiter in
            pending[id] = waiter
            transport.send(frame)
        }
    }

    private func expire(_ id: UInt64) {
        pending.removeValue(forKey: id)?.resume(throwing: ClientConnectionError.timedOut)
    }

    /// Retries across reconnects: connection failures and `unavailable` answers
    /// are retried with the same frame (a send keeps its client_msg_id).
    func requestWithRetry(_ frame: Parley_Frame) async throws -> Parley_Frame {
        var attempt = 0
        while true {
            attempt += 1
            do {
                if connection == nil { try await connect() }
                return try await request(frame)
            } catch {
                switch machine.retryRequest(after: error, attempt: attempt) {
                case .giveUp: throw error
                case .after(let delay): try await Task.sleep(for: delay)
                }
            }
        }
    }
}

/// An event as the device received it.
public struct ReceivedEvent: Sendable, Equatable {
    public let position: Parley_UserPosition
    public let event: Parley_Event
    /// True for a live push, false when it came through sync.
    public let live: Bool
    /// A copy of a send that two regions both accepted during a failover and
    /// that lost to the other copy: not to be shown (`MessagePosted.hidden`).
    public var isHiddenCopy: Bool {
        if case .messagePosted(let posted) = event.kind { return posted.hidden }
        return false
    }

    /// The message ids a shown message takes the place of (`MessagePosted.replaces`):
    /// copies of the same send that lost to it, to be removed if shown.
    public var replaces: [String] {
        if case .messagePosted(let posted) = event.kind { return posted.replaces }
        return []
    }

    public init(position: Parley_UserPosition, event: Parley_Event, live: Bool) {
        self.position = position
        self.event = event
        self.live = live
    }
}

private final class ConnectionIDs: Sendable {
    private let counter = Mutex<UInt64>(0)

    func next() -> UInt64 {
        counter.withLock {
            $0 += 1
            return $0
        }
    }
}

import Synchronization
