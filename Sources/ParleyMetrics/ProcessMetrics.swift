import CoreMetrics
import Hummingbird
import Logging
import ParleyAuth
import ParleyCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// One process's metrics: the roles record through swift-metrics (`Counter`,
/// `Meter`, `Timer`, `Recorder`), and this backs them with a Prometheus
/// registry that `MetricsListener` serves (docs/OPERATIONS.md, "Metrics").
public enum ProcessMetrics {
    /// Built on first use: swift-metrics takes one backend per process, once.
    private static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Parley's latencies sit well under swift-prometheus's 5 ms first bucket.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
            .seconds(5), .seconds(10),
        ]
        // Recorded values are counts: batch sizes and queue depths.
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// Makes swift-metrics record into this process's registry; call once
    /// before any metric is made (a metric made earlier records nowhere).
    public static func bootstrap() { _ = registry }

    /// Everything recorded, in Prometheus text format.
    public static func exposition() -> String { registry.emitToString() }
}

/// Where a process answers `GET /metrics`: a private address, and the
/// operator's admin token, as for sync's status (docs/THREAT_MODEL.md).
public struct MetricsListener: Sendable {
    public let endpoint: Endpoint
    public let admin: AdminCredential

    public init(endpoint: Endpoint, admin: AdminCredential) {
        self.endpoint = endpoint
        self.admin = admin
    }

    /// The HTTP service, to run in the process's service group.
    public func service(name: String, logger: Logger) -> some Service {
        ProcessMetrics.bootstrap()
        let router = Router()
        router.group().add(middleware: AdminOnly(admin)).get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: ProcessMetrics.exposition()))
            )
        }
        return Application(
            router: router, configuration: .init(address: .hostname(endpoint.host, port: endpoint.port), serverName: name), logger: logger
        )
    }
}

/// Counters of one name told apart by one label, made once per value seen:
/// swift-metrics looks a metric up under a lock on every `CoreMetrics.Counter(label:)`.
public final class CounterFamily: Sendable {
    private let name: String
    private let label: String
    private let counters: Mutex<[String: CoreMetrics.Counter]>

    /// `values` are made at once, so the family shows (at zero) before its first event.
    public init(_ name: String, by label: String, values: [String] = []) {
        self.name = name
        self.label = label
        counters = Mutex(Dictionary(uniqueKeysWithValues: values.map { ($0, CoreMetrics.Counter(label: name, dimensions: [(label, $0)])) }))
    }

    public func increment(_ value: String, by amount: Int = 1) {
        let counter = counters.withLock { counters in
            if let counter = counters[value] { return counter }
            let counter = CoreMetrics.Counter(label: name, dimensions: [(label, value)])
            counters[value] = counter
            return counter
        }
        counter.increment(by: amount)
    }
}
