import GRPCCore
import ParleyProto

/// The `Logic` RPC: one bidirectional link per gate. Calls coming up the link
/// are answered concurrently (a gate sends one device's requests one at a
/// time, so each device's order holds); answers and pushes share the way down.
struct LinkService: Parley_Logic.SimpleServiceProtocol {
    let handler: RequestHandler
    let links: GateLinks

    func link(
        request: RPCAsyncSequence<Parley_GateUp, any Error>,
        response: RPCWriter<Parley_LogicDown>,
        context: ServerContext
    ) async throws {
        let (downstream, output) = AsyncStream<Parley_LogicDown>.makeStream()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await message in downstream { try await response.write(message) }
            }
            var registration: (node: String, id: UInt64)?
            do {
                try await withThrowingDiscardingTaskGroup { calls in
                    for try await up in request {
                        switch up.kind {
                        case .hello(let hello):
                            registration = (hello.node, links.add(node: hello.node, output: output))
                        case .call(let call):
                            calls.addTask {
                                let answer = await handler.respond(to: call)
                                output.yield(.with {
                                    $0.result = .with {
                                        $0.callID = call.callID
                                        $0.frame = answer
                                    }
                                })
                            }
                        case nil:
                            break
                        }
                    }
                }
            } catch {
                if let registration { links.remove(node: registration.node, id: registration.id) }
                output.finish()
                throw error
            }
            if let registration { links.remove(node: registration.node, id: registration.id) }
            output.finish()
        }
    }
}
