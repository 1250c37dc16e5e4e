import Foundation
import Hummingbird
import NIOCore
import Logging
import OpenAPIHummingbird
import OpenAPIRuntime
import ParleyCore
import ParleyPlatformAPI

/// Where the platform API listens and what it serves.
public struct PlatformConfiguration: Sendable {
    public var listen: Endpoint
    public var tokens: ServiceTokens
    public var templates: NoticeTemplates
    /// The region's logic instances, in its region file's order (the writer first).
    public var logic: [Endpoint]
    /// How long a notice waits for logic's answer before it is reported failed.
    public var callTimeout: Duration = .seconds(10)
    /// How broadcasts run: batch size, pace, lease.
    public var broadcasts = BroadcastSettings()

    public init(listen: Endpoint, tokens: ServiceTokens, templates: NoticeTemplates, logic: [Endpoint]) {
        self.listen = listen
        self.tokens = tokens
        self.templates = templates
        self.logic = logic
    }
}

enum PlatformServer {
    /// The HTTP application serving openapi/platform.yaml under `/v1`.
    static func application(
        _ configuration: PlatformConfiguration, api: PlatformAPI, logger: Logger, onRunning: @escaping @Sendable () -> Void
    ) throws -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: NoSuchRoute())
        try api.registerHandlers(
            on: router, serverURL: URL(string: "/v1")!,
            middlewares: [PlatformErrors(logger: logger), ServiceAuthentication(tokens: configuration.tokens)]
        )
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: nil),
            onServerRunning: { _ in onRunning() },
            logger: logger
        )
    }
}

/// A path or method the API does not have: a JSON error body like every
/// other; a path it has with another method is 405 with the methods it has
/// in `Allow`.
struct NoSuchRoute<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            let allowed = Self.methods(of: request.uri.path)
            let fault = allowed.map {
                PlatformFault(
                    status: 405, code: .methodNotAllowed,
                    message: "\(request.uri.path) takes \($0) only, not \(request.method) (openapi/platform.yaml)"
                )
            } ?? PlatformFault(status: 404, code: .notFound, message: "no \(request.method) \(request.uri.path) in this API (openapi/platform.yaml)")
            var (head, _) = fault.response
            if let allowed { head.headerFields[.allow] = allowed }
            let body = try JSONEncoder().encode(Components.Schemas.PlatformError(fault))
            return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    /// The methods openapi/platform.yaml gives `path`, or nil when it has no such path.
    static func methods(of path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        switch Array(parts) {
        case ["v1", "notices"], ["v1", "broadcasts"]: return "POST"
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "broadcasts" && !p[2].isEmpty: return "GET"
        default: return nil
        }
    }
}
