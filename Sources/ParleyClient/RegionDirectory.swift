import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where the client may connect, in the order to try: asks `parley route`
/// (any instance answers the same) and keeps its last answer for when no
/// route instance can be reached; without route addresses, the fixed gates.
struct RegionDirectory: Sendable {
    /// One gate to try and the region it belongs to (nil for fixed gates).
    struct Candidate: Sendable, Equatable {
        let region: String?
        let address: GateAddress
    }

    let routes: [String]
    let query: String
    let transport: ParleyClient.Transport
    let fixed: [GateAddress]
    let timeout: TimeInterval

    init(configuration: ParleyClient.Configuration) {
        routes = configuration.routes.map { $0.hasPrefix("http") ? $0 : "http://\($0)" }
        var items: [URLQueryItem] = []
        if let hint = configuration.regionHint { items.append(.init(name: "hint", value: hint)) }
        if let location = configuration.location {
            items.append(.init(name: "lat", value: "\(location.latitude)"))
            items.append(.init(name: "lon", value: "\(location.longitude)"))
        }
        var components = URLComponents()
        components.queryItems = items
        query = components.percentEncodedQuery.map { "?" + $0 } ?? ""
        transport = configuration.transport
        fixed = configuration.gates
        timeout = configuration.routeTimeout.seconds
    }

    /// The route's current answer, or nil when no route instance answered.
    func ask() async -> [Candidate]? {
        for route in routes {
            guard let url = URL(string: "\(route)/route\(query)") else { continue }
            var request = URLRequest(url: url)
            request.timeoutInterval = timeout
            guard let (data, response) = try? await URLSession.shared.data(for: request),
                  (response as? HTTPURLResponse)?.statusCode == 200,
                  let answer = try? JSONDecoder().decode(RouteAnswer.self, from: data)
            else { continue }
            return answer.regions.flatMap { region in
                region.gates.compactMap { gate in
                    switch transport {
                    case .tcp: gate.tcpAddress.map { Candidate(region: region.region, address: $0) }
                    case .webSocket: Candidate(region: region.region, address: .webSocket(url: gate.webSocket))
                    // A route older than long-poll lists none.
                    case .longPoll: gate.longPoll.map { Candidate(region: region.region, address: .longPoll(url: $0)) }
                    }
                }
            }
        }
        return nil
    }

    var fixedCandidates: [Candidate] { fixed.map { Candidate(region: nil, address: $0) } }

    private struct RouteAnswer: Decodable {
        struct Region: Decodable {
            var region: String
            var gates: [Gate]
        }

        struct Gate: Decodable {
            var tcp: String
            /// Whether `tcp` speaks TLS (absent from a route older than TLS: no).
            var tls: Bool?
            /// A URL, `ws://` or `wss://host:port/ws`.
            var webSocket: String
            /// A URL, `http://` or `https://host:port/lp`.
            var longPoll: String?

            var tcpAddress: GateAddress? { GateAddress(tcp: tcp, tls: tls == true) }
        }

        var regions: [Region]
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
