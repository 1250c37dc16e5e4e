import Foundation
import Hummingbird
import Logging
import ParleyRPC
import ServiceLifecycle

/// `GET /status` (JSON) and `GET /metrics` (Prometheus) for a region's sync.
struct StatusServer: Service {
    let listen: Endpoint
    let monitor: ReplicationMonitor
    let watcher: LogWatcher
    let logger: Logger

    func run() async throws {
        let monitor = self.monitor
        let watcher = self.watcher
        let router = Router()
        router.get("/status") { _, _ -> Response in
            let body = try JSONEncoder().encode(monitor.status(local: watcher.current))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: monitor.prometheus(local: watcher.current)))
            )
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "parley-sync"),
            logger: logger
        )
        try await app.run()
    }
}
