import Foundation
import Hummingbird
import Logging
import NIOCore

/// The browser chat client (docs/OPERATIONS.md, "The web client"): static
/// files served on `/app/` from `folder`, and `/app/config.json`, which
/// tells the page its region and every region's route, so that it can move
/// to another region when this one fails. The page then speaks the client
/// protocol over WebSocket with the `parley.json` subprotocol.
public struct WebClient: Sendable {
    public let folder: String
    public let region: String
    /// Every region's route (`host:port`), this region's first.
    public let routes: [String]

    public init(folder: String, region: String, routes: [String]) {
        self.folder = folder
        self.region = region
        self.routes = routes
    }

    private struct Settings: Encodable {
        let region: String
        let routes: [String]
    }

    func register(on router: Router<GateHTTPContext>, logger: Logger) {
        guard FileManager.default.fileExists(atPath: "\(folder)/index.html") else {
            logger.notice("no web client at \(folder): /app/ is not served")
            return
        }
        let settings = Settings(region: region, routes: routes.map { "http://\($0)" })
        router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/app/"]) }
        router.get("/app/config.json") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(settings)))
            )
        }
        router.add(middleware: FileMiddleware(folder, urlBasePath: "/app", searchForIndexHtml: true, logger: logger))
    }
}
