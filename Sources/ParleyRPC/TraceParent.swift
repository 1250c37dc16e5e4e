import Instrumentation
import ServiceContextModule
import Tracing

/// A span's identity as a W3C `traceparent`, carried in messages rather
/// than headers: a gate's request crosses a long-lived link of batched
/// calls, and an event crosses regions in the replicated log
/// (docs/OPERATIONS.md, "Traces"). Empty when tracing is off.
public enum TraceParent {
    /// The span of `context` (the current one by default) as a traceparent.
    public static func of(_ context: ServiceContext? = ServiceContext.current) -> String {
        guard let context else { return "" }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier["traceparent"] ?? ""
    }

    /// A context whose parent span is the one `traceParent` names.
    public static func context(_ traceParent: String) -> ServiceContext {
        var context = ServiceContext.topLevel
        if !traceParent.isEmpty {
            InstrumentationSystem.instrument.extract(["traceparent": traceParent], into: &context, using: DictionaryExtractor())
        }
        return context
    }

    /// Starts a span under the one `traceParent` names; with an empty one
    /// (a request that was not traced) no span is made.
    public static func span(_ name: String, under traceParent: String, kind: SpanKind = .internal) -> (any Span)? {
        guard !traceParent.isEmpty else { return nil }
        return InstrumentationSystem.tracer.startAnySpan(name, context: context(traceParent), ofKind: kind)
    }
}

private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
