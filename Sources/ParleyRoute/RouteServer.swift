import Foundation
import Hummingbird
import Logging
import NIOCore
import ParleyAuth
import ParleyCore
import ParleyDeployment
import ParleyProbe
import ParleyWire
import ServiceLifecycle

/// `parley route`: tells clients which regions to use, nearest healthy first
/// (docs/OPERATIONS.md, "Routing clients"). Any region's instance answers the same.
///
/// - `GET /route?addr=10.2.3.4&lat=..&lon=..&hint=us`: the ordered regions
///   with their gates; `addr` defaults to the caller's address;
/// - `GET /status`: every region's health, drain flag and state changes;
/// - `GET /metrics`: the same in Prometheus text format;
/// - `POST /drain/<region>`, `POST /undrain/<region>`, with the admin token.
///
/// Status and metrics are public: they say which regions are up and drained,
/// no more than the order of `/route`'s answer shows (docs/THREAT_MODEL.md).
public enum RouteServer {
    public static func run(
        listen: (host: String, port: Int), regions: [RegionFile], settings: ClusterFile.RouteSettings, security: LinkSecurity,
        admin: AdminCredential, logger: Logger
    ) async throws {
        let table = RouteTable(regions: regions, settings: settings, security: security, logger: logger)
        let router = Router(context: RouteRequestContext.self)
        router.get("/route") { request, context -> Response in
            let query = request.uri.queryParameters
            let address = query.get("addr").flatMap(IPv4Address.init) ?? context.remoteAddress?.ipAddress.flatMap(IPv4Address.init)
            var location: GeoLocation?
            if let lat = query.get("lat", as: Double.self), let lon = query.get("lon", as: Double.self) {
                location = .init(latitude: lat, longitude: lon)
            }
            let answer = table.answer(for: .init(address: address, location: location, hint: query.get("hint")))
            return try json(["regions": answer], public: true)
        }
        router.get("/status") { _, _ -> Response in
            try json(table.status, public: true)
        }
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: table.prometheus)))
        }
        let adminOnly = router.group().add(middleware: AdminOnly(admin))
        adminOnly.post("/drain/:region") { _, context -> Response in
            guard let region = context.parameters.get("region"), table.setDraining(region, true) else { throw HTTPError(.notFound, message: "no such region") }
            return try json(table.status)
        }
        adminOnly.post("/undrain/:region") { _, context -> Response in
            guard let region = context.parameters.get("region"), table.setDraining(region, false) else { throw HTTPError(.notFound, message: "no such region") }
            return try json(table.status)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "parley-route"), logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: RegionProber(
                    table: table, settings: settings,
                    gateTLS: try security.certificates.map { try ClientTLS(trusting: $0.authority) }
                )), .init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            )
        )
        try await group.run()
    }
}

/// The request context, with the caller's address for `GET /route`.
struct RouteRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// `public`: any web page may read it (the browser client, loaded from a
/// gate, asks every region's route when its own region fails).
private func json(_ value: some Encodable, public: Bool = false) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var headers: HTTPFields = [.contentType: "application/json"]
    if `public` { headers[.accessControlAllowOrigin] = "*" }
    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}
