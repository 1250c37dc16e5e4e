import Logging
import NIOCore
import NIOPosix
import ParleyCore
import ParleyRPC
import ParleyWire
import ServiceLifecycle

/// Accepts TCP clients: 4-byte length-prefixed frames, decoded in the NIO
/// pipeline; each connection is then served by a `ClientSession`.
struct TCPListener: Service {
    let listen: Endpoint
    let maxFrameSize: Int
    let gate: GateContext

    func run() async throws {
        let maxFrameSize = self.maxFrameSize
        let server = try await ServerBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: listen.host, port: listen.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrameSize)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        gate.logger.info("gate accepting TCP", metadata: ["listen": "\(listen)"])
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { clients in
                    for try await client in clients {
                        group.addTask { await serve(client) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let connection = gate.registry.open(now: WallClock.milliseconds())
        let channel = client.channel
        try? await client.executeThenClose { inbound, outbound in
            await ClientSession(gate: gate, connection: connection).serve(
                inbound: inbound,
                write: { try await outbound.write(contentsOf: $0) },
                closeTransport: { try? await channel.close() }
            )
        }
        channel.close(promise: nil)
    }
}
