import Foundation
import Logging
import ParleyCore
import ParleyProto
import PostgresNIO

extension RegionStore {
    // The two channels from sync to logic and to sync's own serving side
    // (docs/ARCHITECTURE.md, "Channels between roles"): PostgreSQL NOTIFY,
    // sent by the committing transaction itself, so a signal is never lost
    // before nor sent without its commit.

    /// The notification channel announcing replicated events: payload
    /// `origin:firstSeq:lastSeq[,…]`.
    static let replicatedChannel = "parley_replicated"

    /// Any commit that appends to the log notifies this channel (no payload).
    static let logChannel = "parley_log"

    /// Typing notices relayed from other regions, for this region's pushing
    /// logic instance: payload one base64 `TypingNotice`. Not transactional,
    /// as nothing is stored (docs/ARCHITECTURE.md, "Typing across regions").
    static let typingChannel = "parley_typing"

    /// Hands typing notices relayed by a peer region to the logic instance
    /// that pushes replicated events here (`listenForReplicated`'s `typing`).
    public func notifyTyping(_ notices: [Parley_TypingNotice]) async throws {
        let payloads = try notices.map { try $0.serializedBytes() as [UInt8] }.map { Data($0).base64EncodedString() }
        guard !payloads.isEmpty else { return }
        try await database.query("SELECT pg_notify(\(Self.typingChannel), p) FROM unnest(\(payloads)::text[]) AS p", logger: logger)
    }

    /// Calls `changed` whenever a commit has appended to this region's log
    /// (any origin), until cancelled. Holds one pooled connection.
    public func listenForLogChanges(_ changed: @Sendable () -> Void) async throws {
        try await database.withConnection { connection in
            try await connection.listen(on: Self.logChannel) { notifications in
                for try await _ in notifications { changed() }
            }
        }
    }

    /// Calls `handle` with each batch of events replicated into this region
    /// from now on, until cancelled, each message with its duplicate state
    /// (`hidden`, `replaces`) as it stands once applied. Holds one pooled connection. With
    /// `asLeader`, first waits (polling once a second) for the region's
    /// replicated-push lock, held by that connection's session, so one
    /// listener per region handles each batch. `typing` hears the typing
    /// notices peer regions relayed (`notifyTyping`) on the same connection.
    public func listenForReplicated(
        asLeader: Bool = false, typing: @escaping @Sendable (Parley_TypingNotice) async -> Void = { _ in },
        _ handle: @Sendable ([Parley_Event]) async -> Void
    ) async throws {
        try await database.withConnection { connection in
            while asLeader {
                // One lock id for "pshr" (replicated pushes).
                let rows = try await connection.query("SELECT pg_try_advisory_lock(1886613618)", logger: logger)
                var acquired = false
                for try await granted in rows.decode(Bool.self) { acquired = granted }
                if acquired { break }
                try await Task.sleep(for: .seconds(1))
            }
            do {
                try await connection.listen(on: Self.typingChannel) { relayed in
                    try await connection.listen(on: Self.replicatedChannel) { notifications in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for try await notification in relayed {
                                    guard let bytes = Data(base64Encoded: notification.payload),
                                        let notice = try? Parley_TypingNotice(serializedBytes: bytes)
                                    else { continue }
                                    await typing(notice)
                                }
                            }
                            for try await notification in notifications {
                                for range in notification.payload.split(separator: ",") {
                                    let parts = range.split(separator: ":")
                                    guard parts.count == 3, let first = UInt64(parts[1]), let last = UInt64(parts[2]), last >= first else { continue }
                                    let events = try await events(origin: String(parts[0]), after: first - 1, limit: Int(last - first + 1))
                                    await handle(try await withDuplicateState(events))
                                }
                            }
                            group.cancelAll()
                        }
                    }
                }
            } catch {
                // The connection goes back to the pool: it must not keep leading.
                if asLeader { _ = try? await connection.query("SELECT pg_advisory_unlock_all()", logger: logger) }
                throw error
            }
            if asLeader { _ = try? await connection.query("SELECT pg_advisory_unlock_all()", logger: logger) }
        }
    }

    /// Applies events replicated from other origins, in one transaction with
    /// their derived state. `events` must be in causal order (the sync
    /// service's `CausalBuffer` releases them so); an event already applied
    /// is skipped, and one that would leave a gap in its origin's log is
    /// refused, so the log stays dense whatever a peer sends.
    ///
    /// Returns the applied vector of the batch's origins after it. Causal
    /// dependencies on other origins are the caller's to check (`CausalBuffer`).
    ///
    /// `reimporting`: the batch may hold this region's own events, which
    /// its database lost and a peer kept (`parley recover`, only while fenced).
    @discardableResult
    public func applyReplicated(_ events: [Parley_Event], reimporting: Bool = false) async throws -> VersionVector {
        let origins = Array(Set(events.map(\.origin))).sorted()
        guard !origins.isEmpty else { return try await appliedVector() }
        guard reimporting || !origins.contains(origin) else {
            throw StoreError(.refusedBatch, "a replicated batch holds events of this region's own origin \(origin)")
        }
        let logger = self.logger
        let (vector, maxHLC) = try await database.withTransaction { tx -> (VersionVector, UInt64) in
            try await tx.query(
                """
                INSERT INTO origins (origin, applied_seq, last_hlc)
                SELECT o, 0, 0 FROM unnest(\(origins)::text[]) AS o ON CONFLICT DO NOTHING
                """,
                logger: logger
            )
            // Row locks on the origins being advanced: two appliers of one
            // region never interleave an origin's log.
            var vector = VersionVector()
            let rows = try await tx.query(
                "SELECT origin, applied_seq FROM origins WHERE origin = ANY(\(origins)::text[]) ORDER BY origin FOR UPDATE",
                logger: logger
            )
            for try await (name, seq) in rows.decode((String, Int64).self) { vector[name] = UInt64(seq) }
            var fresh: [Parley_Event] = []
            var maxHLC: [String: UInt64] = [:]
            for event in events where event.seq > vector[event.origin] {
                guard event.seq == vector[event.origin] + 1 else {
                    throw StoreError(.refusedBatch, "event \(event.origin)-\(event.seq) would leave a gap after \(vector[event.origin])")
                }
                vector[event.origin] = event.seq
                maxHLC[event.origin] = max(maxHLC[event.origin] ?? 0, event.hlc)
                fresh.append(event)
            }
            guard !fresh.isEmpty else { return (vector, 0) }
            let heads = origins.compactMap { name in
                maxHLC[name].map { EventApplier.OriginHead(origin: name, appliedSeq: vector[name], lastHLC: $0) }
            }
            try await EventApplier.apply(fresh, knownOrders: [:], heads: heads, carryCounters: true, tx, logger)
            // Delivered at commit to every logic instance listening: they push
            // the new events to this region's online devices.
            let ranges = Dictionary(grouping: fresh, by: \.origin).map { origin, events in
                "\(origin):\(events.first!.seq):\(events.last!.seq)"
            }.joined(separator: ",")
            try await tx.query("SELECT pg_notify(\(Self.replicatedChannel), \(ranges))", logger: logger)
            return (vector, maxHLC.values.max() ?? 0)
        }
        // Later local events must sort after what this region has seen.
        if maxHLC > 0 { clock.observe(HLC(rawValue: maxHLC)) }
        return vector
    }
}
