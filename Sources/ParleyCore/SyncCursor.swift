/// What a device has seen: per origin, the last `user_seq` it received, and
/// whether a pushed event is new, already seen, or reveals a gap.
///
/// Kept by the client SDK across reconnects; any region can answer
/// "what did I miss after this cursor".
public struct SyncCursor: Hashable, Sendable {
    public private(set) var vector: VersionVector

    public init(_ vector: VersionVector = VersionVector()) { self.vector = vector }

    public enum Verdict: Equatable, Sendable {
        /// The next event of its origin: deliver it and advance.
        case next
        /// Already seen: drop it.
        case duplicate
        /// Events between the cursor and this one are missing: pull them.
        case gap(origin: String, after: UInt64)
    }

    public func classify(origin: String, userSeq: UInt64) -> Verdict {
        let have = vector[origin]
        if userSeq <= have { return .duplicate }
        if userSeq == have + 1 { return .next }
        return .gap(origin: origin, after: have)
    }

    /// Records an event as seen. Only contiguous advances are accepted so the
    /// cursor never skips an event.
    @discardableResult
    public mutating func advance(origin: String, userSeq: UInt64) -> Bool {
        guard classify(origin: origin, userSeq: userSeq) == .next else { return false }
        vector[origin] = userSeq
        return true
    }
}
