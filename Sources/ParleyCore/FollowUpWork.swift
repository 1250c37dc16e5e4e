/// Work after a commit that the core must never wait for (offline push, and
/// later broadcasts): logic announces each committed run of events on a
/// Redis Stream, `parley ext` does it (docs/ARCHITECTURE.md, "Follow-up
/// work: ext"). An announcement names events, not the work: ext reads them
/// from PostgreSQL, so one lost is derived again from the log.
public struct FollowUpWork: Hashable, Sendable {
    /// The stream in the region's Redis, and ext's consumer group on it.
    public static let stream = "parley:followups"
    public static let group = "ext"
    /// Announcements kept at most (approximately): ext reads them long before.
    public static let maxLength = 100_000

    public let origin: String
    public let seqs: ClosedRange<UInt64>

    public init(origin: String, seqs: ClosedRange<UInt64>) {
        self.origin = origin
        self.seqs = seqs
    }

    /// The stream entry's fields, name and value in turn.
    public var fields: [String] { ["origin", origin, "first", String(seqs.lowerBound), "last", String(seqs.upperBound)] }

    /// Reads an entry's fields; nil for anything else.
    public init?(fields: [String]) {
        var values: [String: String] = [:]
        var index = 0
        while index + 1 < fields.count {
            values[fields[index]] = fields[index + 1]
            index += 2
        }
        guard let origin = values["origin"], let first = values["first"].flatMap(UInt64.init),
              let last = values["last"].flatMap(UInt64.init), first >= 1, last >= first
        else { return nil }
        self.init(origin: origin, seqs: first...last)
    }

    /// `seqs` cut into runs of at most `size`, so that no job is too big to finish.
    public func split(size: UInt64) -> [FollowUpWork] {
        stride(from: seqs.lowerBound, through: seqs.upperBound, by: Int(size)).map { first in
            FollowUpWork(origin: origin, seqs: first...min(seqs.upperBound, first + size - 1))
        }
    }
}
