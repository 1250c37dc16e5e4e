#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Orders the regions a client should use, nearest healthy first (docs/OPERATIONS.md, "Routing clients").
///
/// 1. Regions that are down or draining are left out.
/// 2. A region hint naming a candidate goes first.
/// 3. Otherwise the region whose client networks hold the client's address
///    (longest prefix) goes first.
/// 4. The rest follow by great-circle distance from the client's declared
///    location, or else from the first region's location; ties and regions
///    without any location keep the cluster file's order.
public enum RouteRanking {
    public struct Candidate: Sendable {
        public var name: String
        public var location: GeoLocation
        public var clientNetworks: [IPv4Network]
        public var available: Bool

        public init(name: String, location: GeoLocation, clientNetworks: [IPv4Network], available: Bool) {
            self.name = name
            self.location = location
            self.clientNetworks = clientNetworks
            self.available = available
        }
    }

    public struct Client: Sendable {
        public var address: IPv4Address?
        public var location: GeoLocation?
        public var hint: String?

        public init(address: IPv4Address? = nil, location: GeoLocation? = nil, hint: String? = nil) {
            self.address = address
            self.location = location
            self.hint = hint
        }
    }

    /// The available candidates' names, best first.
    public static func rank(_ candidates: [Candidate], for client: Client) -> [String] {
        let available = candidates.filter(\.available)
        var first: Candidate?
        if let hint = client.hint { first = available.first { $0.name == hint } }
        if first == nil, let address = client.address {
            // Longest prefix; on a tie, the earlier region in the cluster file.
            var best: (candidate: Candidate, length: Int)?
            for candidate in available {
                guard let length = candidate.clientNetworks.filter({ $0.contains(address) }).map(\.prefixLength).max() else { continue }
                if length > best?.length ?? -1 { best = (candidate, length) }
            }
            first = best?.candidate
        }
        let origin = client.location ?? first?.location
        let rest = available.enumerated().filter { $0.element.name != first?.name }.sorted { a, b in
            guard let origin else { return a.offset < b.offset }
            let (da, db) = (distanceKm(origin, a.element.location), distanceKm(origin, b.element.location))
            return da == db ? a.offset < b.offset : da < db
        }.map(\.element.name)
        return (first.map { [$0.name] } ?? []) + rest
    }

    /// Great-circle distance (haversine), in kilometres.
    public static func distanceKm(_ a: GeoLocation, _ b: GeoLocation) -> Double {
        let radians = Double.pi / 180
        let dLat = (b.latitude - a.latitude) * radians
        let dLon = (b.longitude - a.longitude) * radians
        let h = pow(sin(dLat / 2), 2) + cos(a.latitude * radians) * cos(b.latitude * radians) * pow(sin(dLon / 2), 2)
        return 2 * 6_371 * asin(min(1, sqrt(h)))
    }
}

/// An IPv4 address as a 32-bit number.
public struct IPv4Address: Sendable, Hashable {
    public let value: UInt32

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }
}

/// A CIDR block such as `10.1.0.0/16`.
public struct IPv4Network: Sendable, Hashable {
    public let base: UInt32
    public let prefixLength: Int

    public init?(_ cidr: String) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let address = IPv4Address(String(parts[0])), let length = Int(parts[1]), (0...32).contains(length) else { return nil }
        prefixLength = length
        base = address.value & Self.mask(length)
    }

    public func contains(_ address: IPv4Address) -> Bool {
        address.value & Self.mask(prefixLength) == base
    }

    private static func mask(_ length: Int) -> UInt32 {
        length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
    }
}
