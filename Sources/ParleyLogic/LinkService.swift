import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyWire
import ParleyRPC
import ServiceContextModule
import ServiceLifecycle
import Tracing

/// The `Logic` RPC: one bidirectional link per gate. Calls coming up the link
/// are answered concurrently, but each change is queued for commit as it
/// arrives, so one device's changes commit in the order its gate sent them;
/// answers and pushes share the way down.
/// When this instance shuts down it stops taking calls, answers the ones in
/// flight and ends the link, so the gate sends what follows elsewhere.
struct LinkService: Parley_Logic.SimpleServiceProtocol {
    /// Who may call logic under mutual TLS: gates carry their clients'
    /// requests, other logic instances forward to the writer, ext posts
    /// notices; only gates ask for health (docs/ARCHITECTURE.md, "Mutual TLS").
    static let callers = CallerRoles([
        Parley_Logic.Method.Link.descriptor: ["gate", "logic", "ext"],
        Parley_Logic.Method.Health.descriptor: ["gate"],
    ])

    let handler: RequestHandler
    let links: GateLinks
    let health: LogicHealth
    let metrics: LogicMetrics
    let logger: Logger

    func health(request: Parley_HealthRequest, context: ServerContext) async throws -> Parley_HealthReport {
        await health.report()
    }

    func link(
        request: RPCAsyncSequence<Parley_GateUpBatch, any Error>,
        response: RPCWriter<Parley_LogicDownBatch>,
        context: ServerContext
    ) async throws {
        // Answers and pushes queue up while the previous write is in flight and
        // leave together: one flush per batch, not per message.
        let output = BatchQueue<Parley_LogicDown>(maxBatch: 1024)
        // An empty batch first: the link is open, calls may come (`LogicLink`).
        try await response.write(Parley_LogicDownBatch())
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                while let queued = await output.next() {
                    try await response.write(contentsOf: LinkBatch.split(queued).map { items in .with { $0.items = Array(items) } })
                }
            }
            var registration: (node: String, id: UInt64)?
            do {
                try await withThrowingDiscardingTaskGroup { calls in
                    for try await batch in request.cancelOnGracefulShutdown() {
                        for up in batch.items {
                            switch up.kind {
                            case .hello(let hello):
                                registration = (hello.node, links.add(node: hello.node, output: output))
                            case .call(let call):
                                // Started here, in arrival order: one connection's pipelined
                                // changes join the group commit in the order it sent them.
                                let started = ContinuousClock.now
                                metrics.request(call.frame)
                                // Joins the gate's trace; a change queued for commit carries the span on.
                                let span = TraceParent.span("logic.request", under: call.traceParent, kind: .server)
                                let answering = ServiceContext.withValue(span?.context ?? .topLevel) { handler.start(call) }
                                calls.addTask {
                                    let answer = await ServiceContext.withValue(span?.context ?? .topLevel) {
                                        let answer = await answering()
                                        // At debug level, one line per request, with the trace it belongs to.
                                        if logger.logLevel <= .debug {
                                            logger.debug("answered", metadata: [
                                                "request": "\(call.frame.kindName)",
                                                "answer": "\(answer.kindName)",
                                                "ms": "\((ContinuousClock.now - started).milliseconds)",
                                            ])
                                        }
                                        return answer
                                    }
                                    span?.end()
                                    metrics.answered(after: (ContinuousClock.now - started).nanoseconds)
                                    output.push(.with { $0.result = .with { $0.callID = call.callID; $0.frame = answer } })
                                }
                            case nil:
                                break
                            }
                        }
                    }
                }
            } catch {
                if let registration { links.remove(node: registration.node, id: registration.id) }
                output.close()
                throw error
            }
            if let registration { links.remove(node: registration.node, id: registration.id) }
            output.close()
        }
    }
}
