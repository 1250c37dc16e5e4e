import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// One process's traces (docs/OPERATIONS.md, "Traces"): when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector, swift-distributed-tracing
/// is backed by swift-otel, which exports spans over OTLP/gRPC; otherwise
/// no span is recorded and nothing is exported.
public enum ProcessTracing {
    /// Bootstraps tracing for `service` in `region`, once per process; the
    /// returned service exports, and must run beside the role (nil: tracing off).
    public static func bootstrap(
        service: String, region: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (any Service)? {
        guard let endpoint = environment["OTEL_EXPORTER_OTLP_ENDPOINT"], !endpoint.isEmpty else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = service
        configuration.resourceAttributes = ["parley.region": region]
        // Its own notes go through the process's logging (text or JSON), warnings and worse only.
        configuration.diagnosticLogger = .custom(Logger(label: "swift-otel"))
        configuration.diagnosticLogLevel = .warning
        // Metrics are Prometheus's and logs go to the process's output: traces only.
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.otlpExporter.protocol = .grpc
        configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(500)
        return try OTel.bootstrap(configuration: configuration)
    }

    /// Adds the current span's `trace_id` and `span_id` to every log line.
    public static let loggingMetadata: Logger.MetadataProvider = OTel.makeLoggingMetadataProvider()
}
