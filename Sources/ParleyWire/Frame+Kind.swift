import ParleyProto

extension Parley_Frame {
    /// The body's kind as its field is named (`send`, `history`, `authOk`, …;
    /// `none` without a body), for metrics labels, span attributes and logs.
    public var kindName: String {
        body.flatMap { Mirror(reflecting: $0).children.first?.label } ?? "none"
    }
}
