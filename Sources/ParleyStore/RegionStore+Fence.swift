import Foundation
import Logging
import ParleyCore
import ParleyProto
import PostgresNIO

/// The log never goes backwards (docs/REPLICATION.md): the fence on this
/// origin's row, set by sync when a peer holds more of this origin than the
/// database does, lifted by `parley recover` once the missing events are back.
extension RegionStore {
    /// The last seq of this region's own origin its database holds.
    public func ownHead() async throws -> UInt64 {
        let rows = try await database.query("SELECT applied_seq FROM origins WHERE origin = \(origin)", logger: logger)
        var head: UInt64 = 0
        for try await seq in rows.decode(Int64.self) { head = UInt64(seq) }
        return head
    }

    /// Fences this origin unless it already is, under the row's lock so no
    /// commit is half-way: true when this call set it. Set only while the
    /// database still holds less than `fence.peerHolds`, read under that
    /// lock (a commit may have moved the head since the caller looked).
    public func fence(_ fence: OriginFence) async throws -> Bool {
        let text = String(decoding: try JSONEncoder().encode(fence), as: UTF8.self)
        let rows = try await database.query(
            """
            UPDATE origins SET fenced = \(text)
            WHERE origin = \(origin) AND fenced IS NULL AND applied_seq < \(Int64(fence.peerHolds))
            RETURNING 1
            """,
            logger: logger
        )
        var set = false
        for try await _ in rows.decode(Int.self) { set = true }
        return set
    }

    /// The fence, if this origin has one.
    public func currentFence() async throws -> OriginFence? { try await ping() }

    /// Lifts the fence once the database holds at least `through` of its own
    /// origin: false (and the fence stays) when it does not yet.
    public func liftFence(through: UInt64) async throws -> Bool {
        let rows = try await database.query(
            "UPDATE origins SET fenced = NULL WHERE origin = \(origin) AND applied_seq >= \(Int64(through)) RETURNING 1",
            logger: logger
        )
        var lifted = false
        for try await _ in rows.decode(Int.self) { lifted = true }
        return lifted
    }
}

extension OriginFence {
    /// The fence as the `origins.fenced` column stores it.
    static func decode(_ text: String) throws -> OriginFence {
        try JSONDecoder().decode(OriginFence.self, from: Data(text.utf8))
    }
}
