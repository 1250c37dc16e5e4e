/// The total order of a conversation's messages: `(hlc, origin, seq)`.
/// Every region sorts the same events the same way, whatever their arrival order.
public struct ConversationOrder: Hashable, Comparable, Sendable {
    public let hlc: HLC
    public let origin: String
    public let seq: UInt64

    public init(hlc: HLC, origin: String, seq: UInt64) {
        self.hlc = hlc
        self.origin = origin
        self.seq = seq
    }

    public static func < (a: ConversationOrder, b: ConversationOrder) -> Bool {
        (a.hlc, a.origin, a.seq) < (b.hlc, b.origin, b.seq)
    }
}
