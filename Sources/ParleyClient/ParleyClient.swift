import Logging
import ParleyCore
import ParleyProto

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
    public enum Transport: Sendable { case tcp, webSocket }

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

    public let configuration: Configuration
    public private(set) var cursor: SyncCursor
    public private(set) var userID: String?
    /// The last connection-level error the server sent before closing.
    public private(set) var lastServerError: ClientError?
    /// How many times a gap in pushes made the client pull.
    public private(set) var gapsPulled = 0
    /// The region of the current connection (nil without route or when not connected).
    public private(set) var region: String?
    /// Every loss of connection and how long the client took to recover, oldest first.
    public private(set) var recoveries: [Recovery] = []
    /// Per origin, the newest event this device has written or received:
    /// presented at every sign-in, so the region it lands in applies its
    /// writes after those (docs/REPLICATION.md, "Session guarantees").
    public private(set) var session = VersionVector()

    private var connection: Connection?
    private var connecting: Task<Parley_AuthOk, any Error>?
    private var nextRequestID: UInt64 = 1
    private var pending: [UInt64: CheckedContinuation<Parley_Frame, any Error>] = [:]
    private var syncing = false
    private var syncAgain = false
    private var stopped = false
    private let directory: RegionDirectory
    private var lastRouteAnswer: [RegionDirectory.Candidate]?
    /// Regions (or fixed gates) lost recently, tried last until the instant given.
    private var avoided: [String: ContinuousClock.Instant] = [:]
    private var lost: (at: ContinuousClock.Instant, from: String?, reason: String)?
    private var lastReceived = ContinuousClock.now
    private var lastHeartbeat = ContinuousClock.now

    private struct Connection {
        let id: UInt64
        let candidate: RegionDirectory.Candidate
        let transport: FrameTransport
        let reader: Task<Void, Never>
        var keepAlive: Task<Void, Never>?
    }

    public init(configuration: Configuration, cursor: SyncCursor = SyncCursor()) {
        self.configuration = configuration
        self.cursor = cursor
        directory = RegionDirectory(configuration: configuration)
        (events, emit) = AsyncStream.makeStream()
    }

    public var isConnected: Bool { connection != nil }

    /// Connects, authenticates and syncs everything missed since the cursor.
    @discardableResult
    public func connect() async throws -> Parley_AuthOk {
        stopped = false
        if let connecting { return try await connecting.value }
        let task = Task { try await self.openConnection() }
        connecting = task
        defer { connecting = nil }
        let ok = try await task.value
        try await sync()
        if let lost {
            let now = ContinuousClock.now
            recoveries.append(Recovery(from: lost.from, to: region, reason: lost.reason, downtime: now - lost.at, at: now))
            self.lost = nil
        }
        return ok
    }

    /// Reconnects to the region route now puts first, forgetting the regions
    /// this device lost earlier: after a failover a device stays where it
    /// landed until told to go home (its own region healthy again). Requests
    /// in flight are resent on the new connection, sends with their `client_msg_id`.
    public func rehome() async throws {
        avoided = [:]
        drop(reason: "rehoming")
        try await connect()
    }

    /// Closes the connection and stops reconnecting.
    public func disconnect() {
        stopped = true
        drop(reason: "closed by the client")
    }

    /// Sends a message; a retry (also after a reconnect, to any region)
    /// keeps `clientMsgID`, so it is stored once.
    public func send(
        to recipient: Recipient, body: String, clientMsgID: String = ParleyClient.newClientMsgID(),
        durability: Parley_Durability = .default
    ) async throws -> Parley_SendAck {
        let frame = Parley_Frame.with {
            $0.send = .with {
                $0.clientMsgID = clientMsgID
                $0.body = body
                $0.durability = durability
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

    public func profile(of userID: String) async throws -> [String: String] {
        try await requestWithRetry(.with { $0.profileRequest = .with { $0.userID = userID } }).profile.fields
    }

    public func unreadCounts() async throws -> [String: UInt64] {
        try await requestWithRetry(.with { $0.unread = Parley_UnreadRequest() }).unreadCounts.byConversation
    }

    /// Pulls every event after the cursor, page by page.
    public func sync() async throws {
        if syncing {
            syncAgain = true
            return
        }
        syncing = true
        defer { syncing = false }
        repeat {
            syncAgain = false
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
                for push in batch.events { accept(push, live: false) }
                more = batch.more && !batch.events.isEmpty
            }
        } while syncAgain
    }

    /// Sends one request frame and waits for its answer. An `Error` answer throws `ClientError`.
    public func request(_ frame: Parley_Frame) async throws -> Parley_Frame {
        guard let connection else { throw ClientConnectionError.notConnected }
        let answer = try await exchange(frame, on: connection)
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

    /// Adds an event this device wrote or received to its session.
    private func saw(_ event: Parley_EventId) {
        if event.seq > session[event.origin] { session[event.origin] = event.seq }
    }

    public static func newClientMsgID() -> String {
        let high = UInt64.random(in: 0...UInt64.max)
        let low = UInt64.random(in: 0...UInt64.max)
        return String(high, radix: 36) + String(low, radix: 36)
    }

    // MARK: - Connection

    private func openConnection() async throws -> Parley_AuthOk {
        drop(reason: "reconnecting")
        var lastError: any Error = ClientConnectionError.notConnected
        for candidate in await candidates() {
            do {
                return try await open(candidate)
            } catch let error as ClientError where !error.code.isRetryable {
                throw error
            } catch {
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
        let now = ContinuousClock.now
        avoided = avoided.filter { $0.value > now }
        let isAvoided = { (candidate: RegionDirectory.Candidate) in self.avoided[candidate.regionKey] != nil }
        return list.filter { !isAvoided($0) } + list.filter(isAvoided)
    }

    private static let connectionIDs = ConnectionIDs()

    private func open(_ candidate: RegionDirectory.Candidate) async throws -> Parley_AuthOk {
        let transport = try await FrameTransport.connect(to: candidate.address, logger: configuration.logger)
        let id = Self.connectionIDs.next()
        let reader = Task { await self.read(transport, connectionID: id) }
        var connection = Connection(id: id, candidate: candidate, transport: transport, reader: reader)
        self.connection = connection
        lastReceived = .now
        let answer: Parley_Frame
        do {
            answer = try await exchange(.with {
                $0.auth = .with {
                    $0.token = configuration.token
                    $0.deviceID = configuration.deviceID
                    $0.session = session.origins.map { origin in .with { $0.origin = origin; $0.seq = session[origin] } }
                }
            }, on: connection, timeout: configuration.signInTimeout)
        } catch {
            drop(reason: "sign-in failed")
            throw error
        }
        if case .error(let error) = answer.body {
            drop(reason: "sign-in refused")
            throw ClientError(error)
        }
        let ok = answer.authOk
        userID = ok.userID
        region = candidate.region
        let interval = Duration.milliseconds(Int64(max(200, ok.heartbeatIntervalMs)))
        connection.keepAlive = Task { await self.keepAlive(id, interval: interval) }
        self.connection = connection
        return ok
    }

    /// Sends heartbeats (every `interval`, or sooner once half the liveness
    /// timeout has passed in silence) and abandons a connection that stays silent.
    private func keepAlive(_ id: UInt64, interval: Duration) async {
        let liveness = configuration.livenessTimeout ?? interval * 2
        let tick = min(interval, liveness / 4)
        lastHeartbeat = .now
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            guard let connection, connection.id == id else { return }
            let now = ContinuousClock.now
            if now - lastReceived > liveness {
                return connectionLost(id, reason: "nothing received for \(liveness)")
            }
            if now - lastHeartbeat >= interval || now - lastReceived >= liveness / 2 {
                lastHeartbeat = now
                connection.transport.send(.with { $0.heartbeat = .with { $0.clientTimeMs = WallClock.milliseconds() } })
            }
        }
    }

    private func read(_ transport: FrameTransport, connectionID: UInt64) async {
        var reason = "closed by the server"
        do {
            for try await frame in transport.inbound { received(frame) }
        } catch {
            reason = "\(error)"
        }
        connectionLost(connectionID, reason: reason)
    }

    private func received(_ frame: Parley_Frame) {
        lastReceived = .now
        if frame.requestID != 0, let waiter = pending.removeValue(forKey: frame.requestID) {
            waiter.resume(returning: frame)
            return
        }
        switch frame.body {
        case .push(let push):
            accept(push, live: true)
        case .error(let error):
            lastServerError = ClientError(error)
        default:
            break  // heartbeat echoes and answers to abandoned requests
        }
    }

    private func connectionLost(_ connectionID: UInt64, reason: String) {
        guard let connection, connection.id == connectionID else { return }
        let now = ContinuousClock.now
        avoided[connection.candidate.regionKey] = now + configuration.avoidLostRegionFor
        if lost == nil { lost = (now, region, reason) }
        drop(reason: reason)
        guard configuration.reconnects, !stopped else { return }
        Task { await self.reconnectWithBackoff() }
    }

    private func drop(reason: String) {
        guard let connection else { return }
        self.connection = nil
        region = nil
        connection.keepAlive?.cancel()
        connection.transport.close()
        let waiters = pending
        pending = [:]
        for waiter in waiters.values { waiter.resume(throwing: ClientConnectionError.closed(reason)) }
    }

    private func reconnectWithBackoff() async {
        // A region that fails drops all its clients at once: a little jitter
        // before the first attempt keeps them from arriving elsewhere together.
        // Spread over 200 ms: every client of a failed gate notices at once.
        try? await Task.sleep(for: .milliseconds(Int64.random(in: 0...200)))
        var attempt = 0
        while !stopped, connection == nil {
            do {
                try await connect()
                return
            } catch let error as ClientError where !error.code.isRetryable {
                configuration.logger.error("reconnect refused", metadata: ["error": "\(error)"])
                return
            } catch {
                attempt += 1
                try? await Task.sleep(for: Backoff.client.delay(afterFailures: attempt))
            }
        }
    }

    // MARK: - Requests

    private func exchange(_ frame: Parley_Frame, on connection: Connection, timeout: Duration? = nil) async throws -> Parley_Frame {
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
            connection.transport.send(frame)
        }
    }

    private func expire(_ id: UInt64) {
        pending.removeValue(forKey: id)?.resume(throwing: ClientConnectionError.timedOut)
    }

    /// Retries across reconnects: connection failures and `unavailable` answers
    /// are retried with the same frame (a send keeps its client_msg_id).
    private func requestWithRetry(_ frame: Parley_Frame, attempts: Int = 8) async throws -> Parley_Frame {
        var attempt = 0
        while true {
            attempt += 1
            do {
                if connection == nil { try await connect() }
                return try await request(frame)
            } catch let error as ClientError where !error.code.isRetryable {
                throw error
            } catch {
                guard attempt < attempts, !stopped else { throw error }
                try await Task.sleep(for: Backoff.client.delay(afterFailures: attempt))
            }
        }
    }

    // MARK: - Events

    private func accept(_ push: Parley_Push, live: Bool) {
        switch cursor.classify(origin: push.position.origin, userSeq: push.position.userSeq) {
        case .next:
            cursor.advance(origin: push.position.origin, userSeq: push.position.userSeq)
            saw(.with { $0.origin = push.event.origin; $0.seq = push.event.seq })
            emit.yield(ReceivedEvent(position: push.position, event: push.event, live: live))
        case .duplicate:
            break
        case .gap:
            guard live else { break }
            gapsPulled += 1
            Task { try? await self.sync() }
        }
    }
}

/// An event as the device received it.
public struct ReceivedEvent: Sendable {
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

extension ClientError {
    /// An `Error` frame from the server: the same type the server threw.
    init(_ error: Parley_Error) {
        self.init(ClientErrorCode(rawValue: error.code), error.message)
    }
}

extension ClientErrorCode {
    /// Whether retrying the same request later can succeed.
    var isRetryable: Bool { self == .unavailable || self == .timeout || self == .internalError }
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

extension RegionDirectory.Candidate {
    /// What a lost connection puts aside: its region, or the gate itself without route.
    var regionKey: String { region ?? address.description }
}
