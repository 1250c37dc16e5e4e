import Foundation
import Hummingbird
import Logging
import ParleyAuth
import ParleyCore
import ParleyRPC
import ParleyStore
import ServiceLifecycle

/// `GET /status` (JSON), `GET /health` (the region's, for route: 200 or 503
/// with a `RegionHealthReport`) and `GET /metrics` (Prometheus) for a region's
/// sync. Health is public; status and metrics need the admin token unless the
/// listener opens them; the digests always need it.
struct StatusServer: Service {
    let listener: StatusListener
    let monitor: ReplicationMonitor
    let watcher: LogWatcher
    let store: RegionStore
    let health: RegionHealthCheck
    let logger: Logger

    func run() async throws {
        let monitor = self.monitor
        let watcher = self.watcher
        let router = Router()
        let adminOnly = router.group().add(middleware: AdminOnly(listener.admin))
        let readOnly = listener.openStatus ? router.group() : adminOnly
        let store = self.store
        readOnly.get("/status") { _, _ -> Response in
            var status = monitor.status(local: watcher.current)
            // From the store: a fence set before this process started counts too.
            status.fence = try await store.currentFence()
            let body = try JSONEncoder().encode(status)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let health = self.health
        router.get("/health") { _, _ -> Response in
            let report = await health.run()
            let body = try JSONEncoder().encode(report)
            return Response(
                status: report.healthy ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        readOnly.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: monitor.prometheus(local: watcher.current)))
            )
        }
        addDigestRoutes(to: adminOnly)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listener.endpoint.host, port: listener.endpoint.port), serverName: "parley-sync"),
            logger: logger
        )
        try await app.run()
    }
}

/// The digests `parley check` compares (docs/OPERATIONS.md, "Checking that
/// regions agree"), all JSON:
/// - `GET /digest/log?at=eu:10,us:7`: per origin, the log through that seq;
/// - `GET /digest/log/buckets?origin=eu&through=10`: its buckets of 1,024 seqs;
/// - `GET /digest/log/events?origin=eu&bucket=0&through=10`: one bucket's events;
/// - `GET /digest/integrity`: per origin, applied seq and events stored;
/// - `GET /digest/conversations/buckets`: conversations in 256 buckets by hash;
/// - `GET /digest/conversations?bucket=7`: one bucket's conversations, their log and state digests;
/// - `GET /digest/state?conversation=ID`: one conversation's state rows.
extension StatusServer {
    private func addDigestRoutes(to router: RouterGroup<BasicRequestContext>) {
        let store = self.store
        router.get("/digest/log") { request, _ -> Response in
            guard let vector = VersionVector(compact: request.uri.queryParameters.get("at") ?? "") else {
                throw HTTPError(.badRequest, message: "at=origin:seq,... is required")
            }
            return try json(try await store.logDigests(at: vector))
        }
        router.get("/digest/log/buckets") { request, _ -> Response in
            let query = request.uri.queryParameters
            guard let origin = query.get("origin"), let through = query.get("through", as: UInt64.self) else {
                throw HTTPError(.badRequest, message: "origin and through are required")
            }
            return try json(try await store.logBuckets(origin: origin, through: through))
        }
        router.get("/digest/log/events") { request, _ -> Response in
            let query = request.uri.queryParameters
            guard let origin = query.get("origin"), let bucket = query.get("bucket", as: Int64.self),
                  let through = query.get("through", as: UInt64.self)
            else { throw HTTPError(.badRequest, message: "origin, bucket and through are required") }
            return try json(try await store.events(origin: origin, bucket: bucket, through: through))
        }
        router.get("/digest/integrity") { _, _ -> Response in
            try json(try await store.logIntegrity())
        }
        router.get("/digest/conversations/buckets") { _, _ -> Response in
            try json(try await store.conversationBuckets())
        }
        router.get("/digest/conversations") { request, _ -> Response in
            guard let bucket = request.uri.queryParameters.get("bucket", as: Int64.self) else {
                throw HTTPError(.badRequest, message: "bucket (0-255) is required")
            }
            return try json(try await store.conversationDigests(bucket: bucket))
        }
        router.get("/digest/state") { request, _ -> Response in
            guard let conversation = request.uri.queryParameters.get("conversation") else {
                throw HTTPError(.badRequest, message: "conversation is required")
            }
            return try json(try await store.stateRows(conversation: conversation))
        }
    }
}

private func json(_ value: some Encodable) throws -> Response {
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(value))))
}
