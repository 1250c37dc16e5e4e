/// What a region answers about its digests (docs/OPERATIONS.md, "Checking
/// that regions agree"): the shapes `parley sync` serves as JSON and
/// `parley check` compares. Hashes are 64-bit XOR digests of rows.

/// One origin's log up to a seq: the XOR of its events' hashes and their count.
public struct LogDigest: Codable, Sendable, Hashable {
    public var digest: Int64
    public var events: Int64

    public init(digest: Int64, events: Int64) {
        self.digest = digest
        self.events = events
    }
}

/// A node under the root of a digest tree: one bucket of 1,024 seqs of an
/// origin's log (the last may be partial; `events` counts events), or one of
/// the 256 buckets of conversations by hash (`events` counts conversations).
public struct DigestBucket: Codable, Sendable, Hashable {
    public var bucket: Int64
    public var digest: Int64
    public var events: Int64

    public init(bucket: Int64, digest: Int64, events: Int64) {
        self.bucket = bucket
        self.digest = digest
        self.events = events
    }
}

/// One stored event, as hashed, with enough to show a human which it is.
public struct EventSummary: Codable, Sendable, Hashable {
    public var origin: String
    public var seq: Int64
    public var hash: Int64
    public var hlc: Int64
    public var kind: Int16
    public var conversation: String
    /// A readable rendering of the event's payload.
    public var text: String

    public init(origin: String, seq: Int64, hash: Int64, hlc: Int64, kind: Int16, conversation: String, text: String) {
        self.origin = origin
        self.seq = seq
        self.hash = hash
        self.hlc = hlc
        self.kind = kind
        self.conversation = conversation
        self.text = text
    }
}

/// A region's digests of one conversation: of the events applied to it, and of its state.
public struct ConversationDigest: Codable, Sendable, Hashable {
    public var conversation: String
    public var logDigest: Int64
    public var logEvents: Int64
    public var stateDigest: Int64

    public init(conversation: String, logDigest: Int64, logEvents: Int64, stateDigest: Int64) {
        self.conversation = conversation
        self.logDigest = logDigest
        self.logEvents = logEvents
        self.stateDigest = stateDigest
    }
}

/// One row of a conversation's derived state: which table, its key, its
/// hash, and its content for the report.
public struct StateRow: Codable, Sendable, Hashable {
    public var table: String
    public var key: String
    public var hash: Int64
    public var content: String

    public init(table: String, key: String, hash: Int64, content: String) {
        self.table = table
        self.key = key
        self.hash = hash
        self.content = content
    }
}

/// Per origin: the applied seq, and how many events are actually stored.
/// They differ only when rows were added or removed behind the system's back.
public struct LogIntegrity: Codable, Sendable, Hashable {
    public var applied: Int64
    public var stored: Int64

    public init(applied: Int64, stored: Int64) {
        self.applied = applied
        self.stored = stored
    }
}

/// The width of a log digest bucket: 1,024 seqs (`seq >> 10`), the same in
/// PostgreSQL's `log_buckets` and in the checker's drill-down.
public enum LogBucket {
    public static let shift = 10
}
