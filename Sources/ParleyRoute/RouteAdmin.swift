import Foundation
import ParleyProbe

/// The client of one route instance's admin surface (`GET /status`,
/// `POST /drain/<region>`, `POST /undrain/<region>`; see `RouteServer`): the
/// one place that speaks it, for `parley route` and the drill.
public struct RouteAdmin: Sendable {
    public let address: String
    public let timeout: Duration

    public init(address: String, timeout: Duration = .seconds(2)) {
        self.address = address
        self.timeout = timeout
    }

    public enum AdminError: Error, CustomStringConvertible {
        /// The instance did not answer, or answered something else than its API.
        case noAnswer(address: String, detail: String)
        case unknownRegion(String)

        public var description: String {
            switch self {
            case .noAnswer(let address, let detail): "route at \(address) did not answer: \(detail)"
            case .unknownRegion(let region): "no region \(region) in the cluster"
            }
        }
    }

    /// Every region as this instance sees it, and the answer as it came (JSON).
    public func status() async throws -> (regions: [String: RouteTable.RegionStatus], json: String) {
        let (code, body) = try await exchange("GET", "/status")
        guard code == 200, let regions = try? JSONDecoder().decode([String: RouteTable.RegionStatus].self, from: Data(body.utf8)) else {
            throw AdminError.noAnswer(address: address, detail: "GET /status answered \(code)")
        }
        return (regions, body)
    }

    /// Drains `region` (its gates move their clients away over the drain
    /// window) or lets it take clients again.
    public func setDraining(_ region: String, _ draining: Bool) async throws {
        let (code, _) = try await exchange("POST", "/\(draining ? "drain" : "undrain")/\(region)")
        switch code {
        case 200: return
        case 404: throw AdminError.unknownRegion(region)
        default: throw AdminError.noAnswer(address: address, detail: "answered \(code)")
        }
    }

    private func exchange(_ method: String, _ path: String) async throws -> (status: Int, body: String) {
        do {
            return try await TCPProbe.http(method, address, path: path, timeout: timeout)
        } catch {
            throw AdminError.noAnswer(address: address, detail: "\(error)")
        }
    }
}
