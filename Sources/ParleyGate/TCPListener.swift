import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ParleyCore
import ParleyRPC
import ParleyWire
import ServiceLifecycle

/// Accepts TCP clients: 4-byte length-prefixed frames, decoded in the NIO
/// pipeline (under TLS when `tls` is set); each connection is then served
/// by a `ClientSession`. A client that never finishes its handshake is
/// closed by the sign-in deadline like one that never signs in.
///
/// The accept loop receives plain channels and wraps each in an
/// `NIOAsyncChannel` only once it is about to serve it. An async channel
/// made in the child initializer and still queued when the listener closes
/// is dropped unfinished, which NIO traps on (swift-nio#2637): with clients
/// reconnecting while a gate stops, that crashed the gate.
struct TCPListener: Service {
    let listen: Endpoint
    let maxFrameSize: Int
    let tls: NIOSSLContext?
    let gate: GateContext

    func run() async throws {
        let server = try await ServerBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Nothing is read until the connection's handlers are in place.
            .childChannelOption(.autoRead, value: false)
            .bind(host: listen.host, port: listen.port) { channel in
                channel.eventLoop.makeSucceededFuture(channel)
            }
        gate.logger.info("gate accepting TCP", metadata: ["listen": "\(listen)", "tls": "\(tls != nil)"])
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

    private func serve(_ channel: any Channel) async {
        let maxFrameSize = self.maxFrameSize
        let tls = self.tls
        let client: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            client = try await channel.eventLoop.submit {
                if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrameSize)))
                try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }.get()
        } catch {
            channel.close(promise: nil)
            return
        }
        try? await client.executeThenClose { inbound, outbound in
            try await channel.setOption(.autoRead, value: true).get()
            let connection = gate.registry.open(now: WallClock.milliseconds(), address: channel.remoteAddress?.ipAddress)
            await ClientSession(gate: gate, connection: connection, transport: .tcp).serve(
                inbound: inbound,
                write: { try await outbound.write(contentsOf: $0) },
                closeTransport: { try? await channel.close() }
            )
        }
        channel.close(promise: nil)
    }
}
