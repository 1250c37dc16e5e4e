import Logging
import ParleyCore
import ParleyProto
import PostgresNIO
import SwiftProtobuf

/// A region's PostgreSQL: the log of every origin and the state derived from it.
///
/// Every state change is committed as an event in the same transaction as its
/// derived state. Dense per-origin `seq` is allocated under the lock of the
/// origin's row in `origins`, held until commit, so seq order is commit order
/// and a reader tailing the log by seq never skips a row.
///
/// Run the `client` (it is a `Service`) for as long as the store is used.
/// Every query goes through `database`, never the client itself (see `Database`).
public final class RegionStore: Sendable {
    let database: Database
    public let origin: String
    let clock: HybridLogicalClock
    let logger: Logger

    public init(client: PostgresClient, origin: String, clock: HybridLogicalClock, logger: Logger) {
        database = Database(client: client, logger: logger)
        self.origin = origin
        self.clock = clock
        self.logger = logger
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
    public func ping() async throws {
        for try await _ in try await database.query("SELECT 1", logger: logger) {}
    }

    /// Commits a batch of commands in one transaction (group commit) and
    /// returns one outcome per command, in order.
    public func commit(_ commands: [StoreCommand], rules: CommitRules = CommitRules()) async throws -> [CommitOutcome] {
        let origin = self.origin
        let now = clock.now()
        let logger = self.logger
        let planner = try await database.withTransaction { tx -> CommitPlanner in
            let (appliedSeq, floorHLC, deps) = try await Self.lockOrigin(origin, tx, logger)
            let snapshot = try await Self.loadSnapshot(for: commands, tx, logger)
            var planner = CommitPlanner(
                origin: origin, snapshot: snapshot, appliedSeq: appliedSeq,
                lastHLC: floorHLC, now: now, deps: deps, rules: rules
            )
            planner.plan(commands)
            guard !planner.events.isEmpty else { return planner }
            let ends = try await Self.incrementCounters(origin: origin, planner.audienceCounts, tx, logger)
            planner.assignUserSeqs(counterEnds: ends)
            let head = EventApplier.OriginHead(origin: origin, appliedSeq: planner.nextSeq - 1, lastHLC: planner.lastHLC.rawValue)
            try await EventApplier.apply(
                planner.events, knownOrders: planner.snapshot.messages.mapValues(\.order), heads: [head], tx, logger
            )
            return planner
        }
        clock.observe(planner.lastHLC)
        return planner.outcomes
    }

    /// Locks this origin's head (held until commit: seq order is commit order)
    /// and reads the other origins' heads, the new events' causal dependencies.
    private static func lockOrigin(
        _ origin: String, _ tx: DatabaseConnection, _ logger: Logger
    ) async throws -> (appliedSeq: UInt64, floorHLC: HLC, deps: [String: UInt64]) {
        let rows = try await tx.execute(LockOriginStatement(origin: origin), logger: logger)
        var head: UInt64?
        var deps: [String: UInt64] = [:]
        // New events must sort after everything this region has applied, from
        // any origin (a reply after its question), whatever this host's wall
        // clock says: the floor is the newest hlc of every origin's head.
        var floor = HLC(rawValue: 0)
        for try await (name, seq, hlc) in rows {
            if name == origin { head = UInt64(seq) } else if seq > 0 { deps[name] = UInt64(seq) }
            floor = max(floor, HLC(rawValue: UInt64(hlc)))
        }
        guard let head else { throw StoreError("origin \(origin) has no counter row") }
        return (head, floor, deps)
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

public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
