/// A point on Earth: where a region is, or where a client says it is.
public struct GeoLocation: Codable, Sendable {
    public var latitude: Double
    public var longitude: Double

    public init(latitude: Double, longitude: Double) {
        self.latitude = latitude
        self.longitude = longitude
    }
}
