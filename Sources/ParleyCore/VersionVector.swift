/// Per origin, the highest contiguous sequence number: a region's applied
/// vector, an event's causal dependencies, or a device's sync cursor.
public struct VersionVector: Hashable, Sendable, CustomStringConvertible {
    public private(set) var entries: [String: UInt64]

    public init(_ entries: [String: UInt64] = [:]) {
        self.entries = entries.filter { $0.value > 0 }
    }

    public subscript(origin: String) -> UInt64 {
        get { entries[origin] ?? 0 }
        set { entries[origin] = newValue == 0 ? nil : newValue }
    }

    public var origins: [String] { entries.keys.sorted() }

    /// True when every component is at least the other's (`self ≥ other`).
    public func dominates(_ other: VersionVector) -> Bool {
        other.entries.allSatisfy { self[$0.key] >= $0.value }
    }

    /// Component-wise maximum.
    public func merged(with other: VersionVector) -> VersionVector {
        var result = self
        for (origin, value) in other.entries where value > result[origin] {
            result[origin] = value
        }
        return result
    }

    /// Component-wise minimum over several vectors (origins absent from one count as 0).
    public static func minimum(of vectors: [VersionVector]) -> VersionVector {
        guard let first = vectors.first else { return VersionVector() }
        var result = first
        for origin in first.entries.keys {
            result[origin] = vectors.map { $0[origin] }.min() ?? 0
        }
        return result
    }

    /// How many events `other` holds that this vector does not, over every
    /// origin but `excluded` (a region never lags behind on its own origin).
    public func eventsBehind(_ other: VersionVector, excluding excluded: String? = nil) -> UInt64 {
        other.entries.reduce(0) { total, entry in
            entry.key == excluded || entry.value <= self[entry.key] ? total : total + (entry.value - self[entry.key])
        }
    }

    /// Parses `origin:seq,origin:seq` (as `compact` writes it); nil if malformed.
    public init?(compact text: String) {
        var entries: [String: UInt64] = [:]
        for part in text.split(separator: ",") {
            let pair = part.split(separator: ":")
            guard pair.count == 2, !pair[0].isEmpty, let seq = UInt64(pair[1]) else { return nil }
            entries[String(pair[0])] = seq
        }
        self.init(entries)
    }

    /// `origin:seq,origin:seq`, sorted by origin: a vector in a URL or a report.
    public var compact: String { origins.map { "\($0):\(self[$0])" }.joined(separator: ",") }

    public var description: String {
        "{" + origins.map { "\($0):\(self[$0])" }.joined(separator: ",") + "}"
    }
}
