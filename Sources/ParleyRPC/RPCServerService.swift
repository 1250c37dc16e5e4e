import GRPCCore
import GRPCNIOTransportHTTP2
import ParleyCore
import ServiceLifecycle

/// Runs a gRPC server as a lifecycle `Service`: SIGTERM lets in-flight RPCs finish.
///
/// With `tls`, the server speaks mutual TLS: a caller without a certificate
/// of the cluster's authority is refused at the handshake, and `callers`
/// says which roles may call which method.
public struct RPCServerService: Service {
    public let server: GRPCServer<HTTP2ServerTransport.Posix>

    public init(listen: ParleyCore.Endpoint, services: [any RegistrableRPCService], tls: TLSIdentity?, callers: CallerRoles) {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // Our clients ping idle connections every two seconds to notice partitions
        // (RPCClientPool); the default policy would close them for it.
        config.connection.keepalive.clientBehavior = .init(minPingIntervalWithoutCalls: .seconds(1), allowWithoutCalls: true)
        config.rpc.maxRequestPayloadSize = LinkBatch.maxMessageBytes
        server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: listen.host, port: listen.port),
                transportSecurity: tls?.rpcServerSecurity ?? .plaintext,
                config: config
            ),
            services: services,
            interceptors: tls == nil ? [] : [callers]
        )
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
