import Foundation
import ParleyCheck
import ParleyCore
import ParleyDeployment
import ParleyProbe
import ParleyRoute

/// What the dashboard shows at one moment, gathered from every region's
/// route, sync and gates (docs/OPERATIONS.md, "The dashboard").
struct DashboardState: Encodable, Sendable {
    struct Region: Encodable, Sendable {
        var name: String
        /// How the first route that answered sees the region.
        var route: RouteTable.RegionStatus?
        /// Connected clients: the sum of its gates' `parley_gate_connections`.
        var clients: Int?
        /// The region's applied vector, as its sync reports it.
        var applied: [String: UInt64]?
        var errors: [String]
    }

    /// How far `region` is behind `peer`'s own writes: events of origin
    /// `peer` the peer holds and the region has not applied, measured from
    /// both ends at once (so a cut link shows, which the region alone cannot see).
    struct Lag: Encodable, Sendable {
        var region: String
        var peer: String
        var events: UInt64
        /// How long the region has been behind, by its own sync; nil when unknown.
        var seconds: Double?
        /// Whether the region's pull stream from the peer is open.
        var connected: Bool?
    }

    var atMs: UInt64
    var regions: [Region]
    var lag: [Lag]
    /// Each route instance's view of every region (nil: it did not answer).
    var routes: [String: [String: RouteTable.RegionStatus]?]
    var check: CheckLoop.Latest?
    var drill: DrillRunner.Progress
    var scenarios: [String]
}

/// Reads the cluster for one `DashboardState`, every source at once, each
/// within a second.
struct ClusterView: Sendable {
    let regions: [RegionFile]
    let adminToken: String
    let timeout: Duration = .seconds(1)

    func gather() async -> (regions: [DashboardState.Region], lag: [DashboardState.Lag], routes: [String: [String: RouteTable.RegionStatus]?]) {
        async let routeViews = routeViews()
        async let syncs = syncStatuses()
        async let clients = clientCounts()
        let (views, statuses, counts) = await (routeViews, syncs, clients)
        let firstView = regions.compactMap { views[$0.name] ?? nil }.first
        let list = regions.map { region in
            var errors: [String] = []
            if case .failure(let error) = statuses[region.name] { errors.append("sync: \(error)") }
            if case .failure(let error) = counts[region.name] { errors.append("gates: \(error)") }
            return DashboardState.Region(
                name: region.name, route: firstView?[region.name], clients: try? counts[region.name]?.get(),
                applied: (try? statuses[region.name]?.get())?.applied, errors: errors
            )
        }
        var lag: [DashboardState.Lag] = []
        for region in regions {
            guard let status = try? statuses[region.name]?.get() else { continue }
            for peer in regions where peer.name != region.name {
                guard let peerStatus = try? statuses[peer.name]?.get() else { continue }
                let head = peerStatus.applied[peer.name] ?? 0
                let have = status.applied[peer.name] ?? 0
                let seen = status.peers[peer.name]
                lag.append(.init(
                    region: region.name, peer: peer.name, events: head > have ? head - have : 0,
                    seconds: seen?.lagSeconds, connected: seen?.connected
                ))
            }
        }
        return (list, lag, views)
    }

    private func routeViews() async -> [String: [String: RouteTable.RegionStatus]?] {
        await withTaskGroup(of: (String, [String: RouteTable.RegionStatus]?).self) { group in
            for region in regions {
                guard let route = region.route else { continue }
                group.addTask {
                    (region.name, try? await RouteAdmin(address: route, adminToken: adminToken, timeout: timeout).status().regions)
                }
            }
            var views: [String: [String: RouteTable.RegionStatus]?] = [:]
            for await (name, view) in group { views[name] = .some(view) }
            return views
        }
    }

    private func syncStatuses() async -> [String: Result<ReplicationStatus, DashboardError>] {
        await withTaskGroup(of: (String, Result<ReplicationStatus, DashboardError>).self) { group in
            for region in regions {
                guard let address = region.syncStatus else { continue }
                group.addTask {
                    do {
                        return (region.name, .success(try await HTTPRegionDigests(name: region.name, address: address, adminToken: adminToken, timeout: 1).status()))
                    } catch {
                        return (region.name, .failure(DashboardError("\(error)")))
                    }
                }
            }
            var statuses: [String: Result<ReplicationStatus, DashboardError>] = [:]
            for await (name, status) in group { statuses[name] = status }
            return statuses
        }
    }

    /// Sums `parley_gate_connections` over a region's gates' `/metrics`.
    private func clientCounts() async -> [String: Result<Int, DashboardError>] {
        await withTaskGroup(of: (String, Result<Int, DashboardError>).self) { group in
            for region in regions {
                guard let addresses = region.metrics?.gates, !addresses.isEmpty else { continue }
                group.addTask {
                    var total = 0
                    for address in addresses {
                        do {
                            let (status, body) = try await TCPProbe.http(
                                "GET", address, path: "/metrics", headers: [("Authorization", "Bearer \(adminToken)")], timeout: timeout
                            )
                            guard status == 200 else { return (region.name, .failure(DashboardError("\(address)/metrics answered \(status)"))) }
                            total += Self.connections(in: body)
                        } catch {
                            return (region.name, .failure(DashboardError("\(address): \(error)")))
                        }
                    }
                    return (region.name, .success(total))
                }
            }
            var counts: [String: Result<Int, DashboardError>] = [:]
            for await (name, count) in group { counts[name] = count }
            return counts
        }
    }

    /// The sum of the `parley_gate_connections` samples in Prometheus text.
    static func connections(in text: String) -> Int {
        text.split(separator: "\n").reduce(0) { sum, line in
            guard line.hasPrefix("parley_gate_connections{") || line.hasPrefix("parley_gate_connections "),
                  let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { return sum }
            return sum + Int(value)
        }
    }
}

struct DashboardError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}
