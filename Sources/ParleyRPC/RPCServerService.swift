import GRPCCore
import GRPCNIOTransportHTTP2
import ServiceLifecycle

/// Runs a gRPC server as a lifecycle `Service`: SIGTERM lets in-flight RPCs finish.
public struct RPCServerService: Service {
    public let server: GRPCServer<HTTP2ServerTransport.Posix>

    public init(listen: Endpoint, services: [any RegistrableRPCService]) {
        server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: listen.host, port: listen.port),
                transportSecurity: .plaintext
            ),
            services: services
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
