import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Logging
import ParleyAuth
import ParleyProbe

/// The fault proxies' admin API over HTTP: `GET /links` reports every link,
/// `PUT /links/<name>` (a `LinkFaults` JSON body) sets what one link does;
/// both with the admin token. `ProxyAdmin` is its client.
public enum ProxyAdminServer {
    /// Serves `links` on `host:port` until cancelled.
    public static func run(links: [String: FaultProxy], host: String, port: Int, admin: AdminCredential) async throws {
        let router = Router()
        router.add(middleware: AdminOnly(admin))
        router.get("/links") { _, _ -> Response in
            try json(links.mapValues(LinkReport.init))
        }
        router.put("/links/:name") { request, context -> Response in
            guard let name = context.parameters.get("name"), let proxy = links[name] else {
                throw HTTPError(.notFound, message: "no such link; GET /links lists them")
            }
            let faults = try await request.decode(as: LinkFaults.self, context: context)
            proxy.set(faults)
            return try json(LinkReport(proxy))
        }
        var logger = Logger(label: "parley.proxy")
        logger.logLevel = .notice
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
        try await app.run()
    }

    private static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

/// One link as the admin API reports it.
public struct LinkReport: Codable, Sendable {
    public var listenPort: Int
    public var upstream: String
    public var faults: LinkFaults
    public var accepted: Int
    public var dropped: Int

    init(_ proxy: FaultProxy) {
        listenPort = proxy.port
        upstream = "\(proxy.upstreamHost):\(proxy.upstreamPort)"
        faults = proxy.faults
        (accepted, dropped) = proxy.counts
    }
}

/// The client of `ProxyAdminServer`: `parley proxy set|status` and the drills.
public struct ProxyAdmin: Sendable {
    /// `host:port` of the admin API.
    public let address: String
    public let adminToken: String

    public init(address: String, adminToken: String) {
        self.address = address
        self.adminToken = adminToken
    }

    /// Sets what link `name` (FROM-TO) does; returns the link as it now is (JSON).
    @discardableResult
    public func set(_ name: String, _ faults: LinkFaults) async throws -> String {
        var request = URLRequest(url: try url("/links/\(name)"))
        request.httpMethod = "PUT"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(faults)
        return try await send(request)
    }

    /// Every link with its faults and connection counts (JSON).
    public func links() async throws -> String {
        try await send(URLRequest(url: try url("/links")))
    }

    private var peer: String { "link proxy at \(address)" }

    private func url(_ path: String) throws -> URL {
        guard let url = URL(string: "http://\(address)\(path)") else { throw PeerError(.badAddress, peer: peer) }
        return url
    }

    private func send(_ request: URLRequest) async throws -> String {
        var request = request
        request.timeoutInterval = 2
        request.setValue("Bearer \(adminToken)", forHTTPHeaderField: "Authorization")
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw PeerError(.unreachable, peer: peer, error.localizedDescription)
        }
        let body = String(decoding: data, as: UTF8.self)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else { throw PeerError(.refused(status: status), peer: peer, "\(request.url?.path ?? ""): \(body)") }
        return body
    }
}
