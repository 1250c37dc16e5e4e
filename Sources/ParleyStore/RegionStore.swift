import Logging
import NIOSSL
import ParleyCore
import ParleyProto
import PostgresNIO
import ServiceLifecycle
import SwiftProtobuf

/// A region's PostgreSQL: the log of every origin and the state derived from it.
///
/// Every state change is committed as an event in the same transaction as its
/// derived state. Dense per-origin `seq` is allocated under the lock of the
/// origin's row in `origins`, held until commit, so seq order is commit order
/// and a reader tailing the log by seq never skips a row.
///
/// Run the store (it is a `Service`: its connection pool) for as long as it
/// is used. Every query goes through `database` (see `Database`); no role
/// sees the PostgreSQL client.
public final class RegionStore: Service, Sendable {
    let database: Database
    public let origin: String
    let clock: HybridLogicalClock
    let logger: Logger

    public init(postgres: PostgresLocation, origin: String, clock: HybridLogicalClock, logger: Logger) {
        var configuration = PostgresClient.Configuration(
            host: postgres.host, port: postgres.port, username: postgres.username, password: postgres.password,
            database: postgres.database, tls: postgres.tls
        )
        configuration.options.maximumConnections = postgres.maximumConnections
        // Every query here looks rows up by key. A statement is planned once
        // per connection, often while its tables are still small, and a plan
        // that scans a table whole then stays while the table grows (see
        // docs/ARCHITECTURE.md, "Plans that stay fast"). JIT is off because
        // seq scans priced out make plan costs look huge, and compiling
        // these small statements took half a second each.
        configuration.options.additionalStartupParameters = [("enable_seqscan", "off"), ("jit", "off")]
        database = Database(client: PostgresClient(configuration: configuration, backgroundLogger: logger), logger: logger)
        self.origin = origin
        self.clock = clock
        self.logger = logger
    }

    /// Runs the connection pool until cancelled.
    public func run() async {
        await database.client.run()
    }

    /// Migrates the schema and makes sure this origin has its counter row.
    public func prepare() async throws {
        try await Migrations.run(on: database, logger: logger)
        try await database.query(
            "INSERT INTO origins (origin, applied_seq, last_hlc) VALUES (\(origin), 0, 0) ON CONFLICT DO NOTHING",
            logger: logger
        )
    }

    /// Answers once PostgreSQL has run a query: the health checks' probe.
    /// One round trip: the server answers, and this origin's fence if its
    /// log went backwards (nil: it takes changes).
    @discardableResult
    public func ping() async throws -> OriginFence? {
        var fence: OriginFence?
        let rows = try await database.query("SELECT fenced FROM origins WHERE origin = \(origin)", logger: logger)
        for try await fenced in rows.decode(String?.self) { fence = fenced.flatMap { try? OriginFence.decode($0) } }
        return fence
    }

    /// Commits new events planned against stored rows (logic's group commit):
    /// reads the rows `keys` name, lets `plan` turn them into events (this
    /// origin's next seqs in order, hlcs increasing from `CommitStart`, each
    /// with its audience), numbers each audience entry's `user_seq`, and
    /// writes the events with their derived state. The rules that decide what
    /// to write are the caller's (logic's `CommitPlanner`); the store only
    /// checks that the log stays dense. `plan` may be called twice.
    ///
    /// Optimistic first, in two round trips: the snapshot is read without a
    /// lock, and one statement writes everything provided this origin's head
    /// is still where the snapshot saw it once its row is locked. With one
    /// committing writer per origin it always is. When another committer
    /// moved it, or an audience reaches past the counters the snapshot read,
    /// the batch commits again the pessimistic way: in one transaction, under
    /// the origin's row lock held from before the snapshot to the commit.
    /// Either way seq order is commit order (docs/ARCHITECTURE.md, "Group commit").
    ///
    /// Returns what `plan` returned and its events as written (user_seqs filled).
    public func commit<Plan: Sendable>(
        reading keys: SnapshotKeys, plan: (CommitSnapshot, CommitStart) throws -> (plan: Plan, events: [Parley_Event])
    ) async throws -> (plan: Plan, events: [Parley_Event]) {
        let origin = self.origin
        let now = clock.now()
        let logger = self.logger
        let committed = try await database.withConnection { connection -> (plan: Plan, events: [Parley_Event]) in
            if let done = try await Self.commitOptimistically(keys, origin: origin, now: now, plan: plan, connection, logger) {
                return done
            }
            return try await database.inTransaction(on: connection) { tx in
                let start = try await Self.lockOrigin(origin, now: now, tx, logger)
                let snapshot = try await Self.loadSnapshot(keys, origin: origin, tx, logger)
                var (result, events) = try plan(snapshot, start)
                guard !events.isEmpty else { return (result, []) }
                try Self.checkDense(events, after: start)
                let ends = try await Self.incrementCounters(origin: origin, Self.audienceCounts(events), tx, logger)
                Self.assignUserSeqs(&events, counterEnds: ends)
                try await EventApplier.apply(events, knownOrders: snapshot.messages.mapValues(\.order), heads: [Self.head(after: events)], tx, logger)
                return (result, events)
            }
        }
        if let last = committed.events.map(\.hlc).max() { clock.observe(HLC(rawValue: last)) }
        return committed
    }

    /// The optimistic commit; nil when it wrote nothing and the batch must
    /// commit under the lock.
    private static func commitOptimistically<Plan: Sendable>(
        _ keys: SnapshotKeys, origin: String, now: HLC, plan: (CommitSnapshot, CommitStart) throws -> (plan: Plan, events: [Parley_Event]),
        _ connection: DatabaseConnection, _ logger: Logger
    ) async throws -> (plan: Plan, events: [Parley_Event])? {
        let snapshot = try await loadSnapshot(keys, origin: origin, connection, logger)
        guard let head = snapshot.heads[origin] else { throw StoreError(.brokenInvariant, "origin \(origin) has no counter row") }
        let start = CommitStart(
            origin: origin, appliedSeq: head.seq, floorHLC: HLC(rawValue: snapshot.heads.values.map(\.hlc).max() ?? 0), now: now,
            deps: snapshot.heads.filter { $0.key != origin && $0.value.seq > 0 }.mapValues(\.seq)
        )
        var (result, events) = try plan(snapshot, start)
        guard !events.isEmpty else { return (result, []) }
        try checkDense(events, after: start)
        let counts = audienceCounts(events)
        guard counts.allSatisfy({ snapshot.countersLookedAt.contains($0.userID) }) else { return nil }
        assignUserSeqs(&events, counterEnds: Dictionary(uniqueKeysWithValues: counts.map {
            ($0.userID, (snapshot.counters[$0.userID] ?? 0) + UInt64($0.count))
        }))
        let wrote = try await EventApplier.apply(
            events, knownOrders: snapshot.messages.mapValues(\.order), heads: [Self.head(after: events)],
            carryCounters: true, expectedHead: start.appliedSeq, connection, logger
        )
        return wrote ? (result, events) : nil
    }

    private static func checkDense(_ events: [Parley_Event], after start: CommitStart) throws {
        for (offset, event) in events.enumerated() where event.origin != start.origin || event.seq != start.appliedSeq + UInt64(offset) + 1 {
            throw StoreError(.brokenInvariant, "planned event \(event.origin)-\(event.seq) does not follow \(start.origin)-\(start.appliedSeq) densely")
        }
    }

    /// This origin's head once `events` (non-empty, dense) are written.
    private static func head(after events: [Parley_Event]) -> EventApplier.OriginHead {
        EventApplier.OriginHead(origin: events[0].origin, appliedSeq: events.last!.seq, lastHLC: events.map(\.hlc).max() ?? 0)
    }

    /// How many of the events concern each user, sorted by user id: counters
    /// are incremented in this fixed order so concurrent commits cannot deadlock.
    static func audienceCounts(_ events: [Parley_Event]) -> [(userID: String, count: Int64)] {
        var counts: [String: Int64] = [:]
        for event in events { for entry in event.audience { counts[entry.userID, default: 0] += 1 } }
        return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Gives each audience entry its user_seq, given each user's counter after
    /// the increment: a user's events get consecutive numbers ending there.
    static func assignUserSeqs(_ events: inout [Parley_Event], counterEnds: [String: UInt64]) {
        let counts = Dictionary(uniqueKeysWithValues: audienceCounts(events).map { ($0.userID, UInt64($0.count)) })
        var next = counterEnds.reduce(into: [String: UInt64]()) { $0[$1.key] = $1.value - (counts[$1.key] ?? 0) + 1 }
        for index in events.indices {
            for entryIndex in events[index].audience.indices {
                let user = events[index].audience[entryIndex].userID
                events[index].audience[entryIndex].userSeq = next[user, default: 1]
                next[user, default: 1] += 1
            }
        }
    }

    /// Locks this origin's head (held until commit: seq order is commit order)
    /// and reads the other origins' heads, the new events' causal dependencies.
    private static func lockOrigin(_ origin: String, now: HLC, _ tx: DatabaseConnection, _ logger: Logger) async throws -> CommitStart {
        let rows = try await tx.execute(LockOriginStatement(origin: origin), logger: logger)
        var head: UInt64?
        var deps: [String: UInt64] = [:]
        // New events must sort after everything this region has applied, from
        // any origin (a reply after its question), whatever this host's wall
        // clock says: the floor is the newest hlc of every origin's head.
        var floor = HLC(rawValue: 0)
        for try await (name, seq, hlc, fenced) in rows {
            if name == origin, let fenced {
                let advice = (try? OriginFence.decode(fenced))?.advice ?? fenced
                throw StoreError(.fenced, advice)
            }
            if name == origin { head = UInt64(seq) } else if seq > 0 { deps[name] = UInt64(seq) }
            floor = max(floor, HLC(rawValue: UInt64(hlc)))
        }
        guard let head else { throw StoreError(.brokenInvariant, "origin \(origin) has no counter row") }
        return CommitStart(origin: origin, appliedSeq: head, floorHLC: floor, now: now, deps: deps)
    }

    private static func incrementCounters(
        origin: String, _ counts: [(userID: String, count: Int64)], _ tx: DatabaseConnection, _ logger: Logger
    ) async throws -> [String: UInt64] {
        let statement = IncrementCountersStatement(origin: origin, users: counts.map(\.userID), increments: counts.map(\.count))
        let rows = try await tx.execute(statement, logger: logger)
        var ends: [String: UInt64] = [:]
        for try await (user, seq) in rows { ends[user] = UInt64(seq) }
        return ends
    }
}

/// Where a commit starts, read under the origin's lock.
public struct CommitStart: Sendable {
    public let origin: String
    /// The origin's last seq: the first new event takes the next one.
    public let appliedSeq: UInt64
    /// The newest hlc of every origin's head: new events sort after
    /// everything this region has applied (a reply after its question),
    /// whatever this host's wall clock says.
    public let floorHLC: HLC
    /// This process's clock when the commit began.
    public let now: HLC
    /// The other origins' heads: the new events' causal dependencies.
    public let deps: [String: UInt64]

    public init(origin: String, appliedSeq: UInt64, floorHLC: HLC, now: HLC, deps: [String: UInt64]) {
        self.origin = origin
        self.appliedSeq = appliedSeq
        self.floorHLC = floorHLC
        self.now = now
        self.deps = deps
    }
}

/// Where a region's PostgreSQL is, and how many connections one process
/// keeps to it.
public struct PostgresLocation: Sendable {
    public var host: String
    public var port: Int
    public var database = "parley"
    public var username = "postgres"
    /// SCRAM password; nil only for a server that trusts its clients (never logged).
    public var password: String?
    /// Per process: a logic instance's group commit needs one or two at a
    /// time; reads, listeners and the health probe take the rest.
    public var maximumConnections = 8
    /// A PEM file of the authority that signed the server's certificate:
    /// every connection is then TLS, the certificate checked against it and
    /// the host (nil: plaintext, for a server on the same host).
    public var certificateAuthority: String?

    var tls: PostgresClient.Configuration.TLS {
        guard let certificateAuthority else { return .disable }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(certificateAuthority)
        configuration.minimumTLSVersion = .tlsv12
        return .require(configuration)
    }

    public init(host: String, port: Int, database: String = "parley", password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.password = password
    }
}

/// What the store refused or could not do. `description` is for operators'
/// logs; a device only learns that it may retry (`clientError`).
public struct StoreError: Error, CustomStringConvertible, CustomDebugStringConvertible, ClientErrorConvertible {
    public enum Kind: Sendable {
        /// The PostgreSQL connection closed under the query.
        case connectionClosed
        /// A replicated batch this region must not apply (a gap, its own origin).
        case refusedBatch
        /// Stored rows or a plan break an invariant of the log.
        case brokenInvariant
        /// This region's own log went backwards: it takes no changes (`OriginFence`).
        case fenced
    }

    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    public var debugDescription: String { "StoreError.\(kind): \(description)" }

    public var clientError: ClientError {
        if kind == .fenced {
            return ClientError(.unavailable, "this region takes no changes until its operator recovers it; retry, another region will serve you", detail: debugDescription)
        }
        return ClientError(.unavailable, "the region's store is unavailable; retry", detail: debugDescription)
    }

    /// Whether `error` means the server went away or cannot take writes now,
    /// as during a failover to the standby, rather than that the work itself
    /// failed: retrying the same work on a new connection can succeed.
    public static func isConnectionFailure(_ error: any Error) -> Bool {
        if let error = error as? StoreError { return error.kind == .connectionClosed }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
            return true
        case .server:
            // 08: connection exception; 57P01-03: shut down or not yet
            // accepting; 25006: a demoted server refusing a write.
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "25006"].contains(state)
        default:
            return false
        }
    }
}
