/// The items of a link (gate ↔ logic) travel in batches: whatever queued
/// while the previous write was in flight goes as one stream message, so a
/// busy link pays gRPC's per-message cost (framing, HTTP/2 frames, a
/// flush, a wake-up of the reader) once per batch rather than once per item
/// (docs/ARCHITECTURE.md, "Batched links").
public enum LinkBatch {
    /// Items per stream message, at most.
    public static let maxItems = 64
    /// The largest stream message either end accepts: `maxItems` items of the
    /// largest kind (a gate's frame, a page of events) fit in it.
    public static let maxMessageBytes = 64 << 20

    /// `items` cut into stream messages of at most `maxItems`, in order.
    public static func split<Item>(_ items: [Item]) -> [ArraySlice<Item>] {
        stride(from: 0, to: items.count, by: maxItems).map { items[$0..<min($0 + maxItems, items.count)] }
    }
}
