import Foundation
import Logging
import ParleyProbe
import ParleyRPC
import ServiceLifecycle

/// Watches how the region's own `parley route` sees the region. Drained by
/// an operator: the devices are told to go elsewhere over the drain window.
/// Down while this gate still runs (its Postgres, Redis or logic failed the
/// probes): they are told within at most 1 s, since they cannot be served
/// here. Up and undrained again: the gate takes devices again. A route that
/// does not answer changes nothing: the gate keeps serving.
struct RouteWatch: Service {
    let region: String
    let route: String
    let interval: Duration
    let drainWindow: Duration
    let registry: ConnectionRegistry
    let logger: Logger

    private struct RegionState: Decodable {
        var state: String
        var draining: Bool
    }

    func run() async throws {
        var evacuation: Task<Void, Never>?
        var reason: String?
        while !Task.isShuttingDownGracefully {
            if let seen = await regionState() {
                let now = seen.draining ? "drained" : seen.state == "down" ? "down" : nil
                if now != reason {
                    evacuation?.cancel()
                    evacuation = nil
                    if let now {
                        let window = now == "drained" ? drainWindow : min(drainWindow, .seconds(1))
                        logger.notice("region \(now): moving devices elsewhere", metadata: ["window": "\(window)"])
                        evacuation = Task { [registry] in await registry.drain(over: window) }
                    } else {
                        logger.notice("region takes devices again")
                        registry.undrain()
                    }
                    reason = now
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        evacuation?.cancel()
    }

    private func regionState() async -> RegionState? {
        guard let (status, body) = try? await TCPProbe.httpGet(route, path: "/status", timeout: .seconds(1)), status == 200 else { return nil }
        return (try? JSONDecoder().decode([String: RegionState].self, from: Data(body.utf8)))?[region]
    }
}
