import Foundation
import Hummingbird
import Logging
import ParleyAuth
import ParleyCheck
import ParleyCore
import ParleyDeployment
import ParleyDrill
import ParleyRoute
import ServiceLifecycle

/// `parley dashboard`: the operator's page (web/dashboard) and the API it
/// polls (docs/OPERATIONS.md, "The dashboard"). The page is public; every
/// `/api/` request needs the admin token:
/// - `GET /api/state`: `DashboardState`;
/// - `POST /api/drain/<region>`, `POST /api/undrain/<region>`: on every route instance;
/// - `POST /api/drill?scenario=…&region=…`: starts a drill on ops/up's cluster.
public struct DashboardConfiguration: Sendable {
    public var listen: Endpoint
    public var regions: [RegionFile]
    public var adminToken: String
    /// The page's folder (web/dashboard).
    public var web: String
    /// The cluster drills run on (ops/up's); nil: the drill button is refused.
    public var drills: (any DrillCluster)?
    public var checkInterval: Duration = .seconds(5)

    public init(listen: Endpoint, regions: [RegionFile], adminToken: String, web: String) {
        self.listen = listen
        self.regions = regions
        self.adminToken = adminToken
        self.web = web
    }
}

public enum DashboardServer {
    public static func run(_ configuration: DashboardConfiguration, logger: Logger) async throws {
        let admin = try AdminCredential(token: configuration.adminToken)
        let view = ClusterView(regions: configuration.regions, adminToken: configuration.adminToken)
        let checks = CheckLoop(
            sources: configuration.regions.compactMap { region in
                region.syncStatus.map { HTTPRegionDigests(name: region.name, address: $0, adminToken: configuration.adminToken, timeout: 5) }
            },
            interval: configuration.checkInterval
        )
        let drills = DrillRunner(cluster: configuration.drills)
        let routes = configuration.regions.compactMap(\.route)
        let names = Set(configuration.regions.map(\.name))

        let router = Router()
        let api = router.group("api").add(middleware: AdminOnly(admin))
        api.get("state") { _, _ -> Response in
            let gathered = await view.gather()
            let state = DashboardState(
                atMs: WallClock.milliseconds(), regions: gathered.regions, lag: gathered.lag, routes: gathered.routes,
                check: checks.latest, drill: drills.current, scenarios: Drill.Scenario.allCases.map(\.rawValue)
            )
            return try json(state)
        }
        for (path, draining) in [("drain", true), ("undrain", false)] {
            api.post("\(path)/:region") { _, context -> Response in
                guard let region = context.parameters.get("region"), names.contains(region) else {
                    throw HTTPError(.notFound, message: "no such region")
                }
                var failed: [String] = []
                for route in routes {
                    do { try await RouteAdmin(address: route, adminToken: configuration.adminToken).setDraining(region, draining) } catch {
                        failed.append("\(route): \(error)")
                    }
                }
                logger.notice("\(path) from the dashboard", metadata: ["region": "\(region)", "failed": "\(failed)"])
                // Some instance that did not hear it may still send clients there: say so.
                return try json(["region": region, "draining": "\(draining)", "unreachableRoutes": failed.joined(separator: "; ")])
            }
        }
        api.post("drill") { request, _ -> Response in
            let query = request.uri.queryParameters
            guard let scenario = query.get("scenario").flatMap(Drill.Scenario.init(rawValue:)),
                  let region = query.get("region"), names.contains(region) else {
                throw HTTPError(.badRequest, message: "scenario (\(Drill.Scenario.allCases.map(\.rawValue).joined(separator: ", "))) and region (\(names.sorted().joined(separator: ", "))) are required")
            }
            do {
                try drills.start(scenario, region: region)
            } catch DrillRunner.StartError.alreadyRunning {
                throw HTTPError(.conflict, message: "a drill is running")
            } catch {
                throw HTTPError(.serviceUnavailable, message: "drills need the cluster ops/up runs (parley dashboard --run)")
            }
            logger.notice("drill started from the dashboard", metadata: ["scenario": "\(scenario.rawValue)", "region": "\(region)"])
            return try json(drills.current)
        }
        router.add(middleware: FileMiddleware(configuration.web, searchForIndexHtml: true, logger: logger))

        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "parley-dashboard"),
            logger: logger
        )
        logger.info("dashboard ready", metadata: ["listen": "http://\(configuration.listen)/"])
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: checks), .init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}

private func json(_ value: some Encodable) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Response(
        status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value)))
    )
}
