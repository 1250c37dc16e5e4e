import Foundation
import ParleyProbe

/// The client of one route instance's admin surface (`GET /status`,
/// `POST /drain/<region>`, `POST /undrain/<region>`; see `RouteServer`): the
/// one place that speaks it, for `parley route` and the drill. Draining needs
/// the admin token; status is public.
public struct RouteAdmin: Sendable {
    public let address: String
    public let adminToken: String?
    public let timeout: Duration

    public init(address: String, adminToken: String? = nil, timeout: Duration = .seconds(2)) {
        self.address = address
        self.adminToken = adminToken
        self.timeout = timeout
    }

    /// Every region as this instance sees it, and the answer as it came (JSON).
    public func status() async throws -> (regions: [String: RouteTable.RegionStatus], json: String) {
        let (code, body) = try await exchange("GET", "/status")
        guard code == 200, let regions = try? JSONDecoder().decode([String: RouteTable.RegionStatus].self, from: Data(body.utf8)) else {
            throw code == 200 ? PeerError(.malformedAnswer, peer: peer, "GET /status") : PeerError(.refused(status: code), peer: peer, "GET /status")
        }
        return (regions, body)
    }

    /// Drains `region` (its gates move their clients away over the drain
    /// window) or lets it take clients again. A region the instance does not
    /// know is `PeerError.refused(status: 404)`; without the admin token, 401.
    public func setDraining(_ region: String, _ draining: Bool) async throws {
        let (code, _) = try await exchange("POST", "/\(draining ? "drain" : "undrain")/\(region)")
        guard code == 200 else { throw PeerError(.refused(status: code), peer: peer, "\(draining ? "drain" : "undrain") \(region)") }
    }

    private var peer: String { "route at \(address)" }

    private func exchange(_ method: String, _ path: String) async throws -> (status: Int, body: String) {
        do {
            let headers = adminToken.map { ["Authorization": "Bearer \($0)"] } ?? [:]
            return try await TCPProbe.http(method, address, path: path, headers: headers.map { ($0.key, $0.value) }, timeout: timeout)
        } catch let error as PeerError {
            throw error
        } catch {
            throw PeerError(.unreachable, peer: peer, "\(error)")
        }
    }
}
