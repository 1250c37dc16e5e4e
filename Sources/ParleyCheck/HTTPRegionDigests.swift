import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyCore
import ParleyProbe

/// A region's digests over its sync's HTTP listener (`syncStatus` in the
/// region file), with the admin token.
public struct HTTPRegionDigests: RegionDigestSource {
    public let name: String
    let address: String
    let adminToken: String
    let timeout: TimeInterval

    public init(name: String, address: String, adminToken: String, timeout: TimeInterval = 10) {
        self.name = name
        self.address = address
        self.adminToken = adminToken
        self.timeout = timeout
    }

    public func status() async throws -> ReplicationStatus { try await get("/status") }
    public func integrity() async throws -> [String: LogIntegrity] { try await get("/digest/integrity") }
    public func logDigests(at vector: VersionVector) async throws -> [String: LogDigest] {
        try await get("/digest/log", ["at": vector.compact])
    }
    public func logBuckets(origin: String, through: UInt64) async throws -> [DigestBucket] {
        try await get("/digest/log/buckets", ["origin": origin, "through": "\(through)"])
    }
    public func events(origin: String, bucket: Int64, through: UInt64) async throws -> [EventSummary] {
        try await get("/digest/log/events", ["origin": origin, "bucket": "\(bucket)", "through": "\(through)"])
    }
    public func conversationBuckets() async throws -> [DigestBucket] { try await get("/digest/conversations/buckets") }
    public func conversations(bucket: Int64) async throws -> [ConversationDigest] {
        try await get("/digest/conversations", ["bucket": "\(bucket)"])
    }
    public func stateRows(conversation: String) async throws -> [StateRow] {
        try await get("/digest/state", ["conversation": conversation])
    }

    private func get<T: Decodable>(_ path: String, _ query: [String: String] = [:]) async throws -> T {
        var components = URLComponents()
        components.scheme = "http"
        components.percentEncodedHost = String(address.split(separator: ":").first ?? "")
        components.port = address.split(separator: ":").last.flatMap { Int($0) }
        components.path = path
        if !query.isEmpty { components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } }
        guard let url = components.url else { throw PeerError(.badAddress, peer: "\(name) at \(address)") }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        request.setValue("Bearer \(adminToken)", forHTTPHeaderField: "Authorization")
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw PeerError(.unreachable, peer: "\(name) at \(address)", error.localizedDescription)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else {
            throw PeerError(.refused(status: status), peer: "\(name) at \(address)", "\(path): \(String(decoding: data, as: UTF8.self))")
        }
        return try JSONDecoder().decode(T.self, from: data)
    }
}

extension ConsistencyReport {
    /// The report for a human: regions, vectors, lag matrix, verdict, differences.
    public var text: String {
        var lines: [String] = []
        let regions = applied.keys.sorted() + unreachable.keys.filter { applied[$0] == nil }.sorted()
        lines.append("regions:")
        for region in regions {
            if let vector = applied[region] { lines.append("  \(region)  applied \(vector.isEmpty ? "(nothing)" : vector)") }
            if let error = unreachable[region] { lines.append("  \(region)  UNREACHABLE: \(error)") }
        }
        if !comparedAt.isEmpty || verdict != .unreachable { lines.append("compared at: \(comparedAt.isEmpty ? "(nothing yet)" : comparedAt)") }
        if !lag.isEmpty {
            let peers = Array(Set(lag.map(\.peer)).union(lag.map(\.region))).sorted()
            lines.append("lag (row behind column: events / seconds; * = link down):")
            lines.append("  " + "".padding(toLength: 6, withPad: " ", startingAt: 0) + peers.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
            for region in Array(Set(lag.map(\.region))).sorted() {
                let cells = peers.map { peer -> String in
                    guard let entry = lag.first(where: { $0.region == region && $0.peer == peer }) else { return "-" }
                    return "\(entry.events) / \(String(format: "%.1f", entry.seconds))\(entry.connected ? "" : " *")"
                }
                lines.append("  " + region.padding(toLength: 6, withPad: " ", startingAt: 0) + cells.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
            }
        }
        if verdict != .unreachable {
            lines.append("conversations: \(conversationsCompared) compared, \(conversationsDeferred) deferred (events not yet applied everywhere)")
        }
        lines.append("verdict: \(verdict.rawValue.uppercased())" + (differences.isEmpty ? "" : " (\(differences.count) difference\(differences.count == 1 ? "" : "s"))"))
        for difference in differences {
            lines.append("  [\(difference.kind.rawValue)] \(difference.summary)")
            for (region, version) in difference.versions.sorted(by: { $0.key < $1.key }) { lines.append("      \(region): \(version)") }
        }
        return lines.joined(separator: "\n")
    }

    /// One line for `--watch`: time, verdict, the largest lag.
    public var line: String { "\(ISO8601DateFormatter().string(from: Date())) \(summary)" }

    /// Verdict, the largest lag, and the vector compared at.
    public var summary: String {
        let worst = lag.max { $0.events < $1.events }
        let lagText = worst.map { "max lag \($0.events) events (\($0.region) behind \($0.peer)), \(String(format: "%.1f", lag.map(\.seconds).max() ?? 0)) s" } ?? "no lag reported"
        let extra = verdict == .unreachable ? " " + unreachable.keys.sorted().joined(separator: ", ") : verdict == .divergent ? " \(differences.count) differences" : ""
        return "\(verdict.rawValue)\(extra); \(lagText); compared at \(comparedAt)"
    }
}
