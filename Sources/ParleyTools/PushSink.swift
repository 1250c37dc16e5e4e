import FoundationEssentials
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
import ParleyExt
import Synchronization

/// A push gateway that delivers nothing: it checks each call's signature,
/// keeps the notification and answers 200 (`parley push-sink`, the demo's
/// and the tests' receiver). `failNext` makes it answer 503 to the next
/// calls, as a gateway that is down would.
public final class PushSink: Sendable {
    public struct Call: Sendable {
        public let notification: PushGateway.Notification
        /// The status the sink answered.
        public let status: Int
    }

    private let secret: String
    /// How far a call's timestamp may be from the sink's clock, in seconds.
    private let maxSkewSeconds = 300
    private let state = Mutex<(calls: [Call], failuresLeft: Int)>(([], 0))
    private let running = Mutex<ServiceGroup?>(nil)

    public init(secret: String) {
        self.secret = secret
    }

    /// Every signed call received, in order, failed ones included.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The notifications accepted (answered 200).
    public var delivered: [PushGateway.Notification] { calls.filter { $0.status == 200 }.map(\.notification) }

    /// Answers the next `count` calls with 503.
    public func failNext(_ count: Int) { state.withLock { $0.failuresLeft = count } }

    /// Serves `POST /push` on `host:port` until `stop` (or, with
    /// `stopsOnSignals`, SIGTERM or SIGINT); `ready` is called once it accepts
    /// connections, `received` with each accepted notification.
    public func run(
        host: String, port: Int, stopsOnSignals: Bool = false, ready: @escaping @Sendable () -> Void = {},
        received: @escaping @Sendable (PushGateway.Notification) -> Void = { _ in }
    ) async throws {
        let router = Router()
        router.post("/push") { request, _ -> Response in
            var request = request
            let body = String(buffer: try await request.collectBody(upTo: 64 * 1024))
            let timestamp = request.headers[HTTPField.Name("X-Parley-Timestamp")!].flatMap { Int($0) } ?? 0
            let signature = request.headers[HTTPField.Name("X-Parley-Signature")!] ?? ""
            let now = Int(Date().timeIntervalSince1970)
            guard abs(now - timestamp) <= self.maxSkewSeconds,
                  PushGateway.verify(body: body, timestamp: timestamp, signature: signature, secret: self.secret)
            else { return Response(status: .unauthorized) }
            guard let notification = try? JSONDecoder().decode(PushGateway.Notification.self, from: Data(body.utf8)) else {
                return Response(status: .badRequest)
            }
            let status = self.state.withLock { state -> Int in
                let status = state.failuresLeft > 0 ? 503 : 200
                state.failuresLeft = max(0, state.failuresLeft - 1)
                state.calls.append(Call(notification: notification, status: status))
                return status
            }
            if status == 200 { received(notification) }
            return Response(status: .init(code: status))
        }
        var logger = Logger(label: "parley.push-sink")
        logger.logLevel = .notice
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { _ in ready() }, logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: stopsOnSignals ? [UnixSignal.sigterm, .sigint] : [], logger: logger))
        running.withLock { $0 = group }
        try await group.run()
    }

    /// Ends `run` gracefully: the server closes its listener and returns.
    public func stop() async {
        await running.withLock { $0 }?.triggerGracefulShutdown()
    }
}
