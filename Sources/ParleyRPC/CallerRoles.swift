import GRPCCore
import GRPCNIOTransportHTTP2
import ParleyCore
import X509

/// Which roles may call which methods of a server under mutual TLS: the
/// caller's role is the organizational unit of the certificate it presented
/// in the handshake (`parley certs` writes it). A method not listed is
/// refused to everyone; a caller with no certificate never got past the
/// handshake (docs/ARCHITECTURE.md, "Mutual TLS").
public struct CallerRoles: ServerInterceptor {
    /// "package.Service/Method" → the roles allowed to call it.
    private let allowed: [String: Set<String>]

    public init(_ allowed: [MethodDescriptor: Set<String>]) {
        self.allowed = Dictionary(uniqueKeysWithValues: allowed.map { ($0.key.fullyQualifiedMethod, $0.value) })
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let certificate = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate
        let role = certificate.flatMap(Self.role)
        guard let role, allowed[method]?.contains(role) == true else {
            throw RPCError(
                code: .permissionDenied,
                message: "\(method) is not for \(role.map { "the \($0) role" } ?? "a caller without a role") (\(certificate.map { "\($0.subject)" } ?? "no certificate"))"
            )
        }
        return try await next(request, context)
    }

    /// The role a certificate names: its subject's organizational unit.
    static func role(of certificate: Certificate) -> String? {
        for name in certificate.subject {
            for attribute in name where attribute.type == .RDNAttributeType.organizationalUnitName {
                return String(attribute.value)
            }
        }
        return nil
    }
}

extension TLSIdentity {
    /// A gRPC server's: it presents this identity and takes only callers
    /// presenting a certificate of the same authority.
    var rpcServerSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
        .mTLS(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: privateKey, format: .pem)) {
            $0.trustRoots = .certificates([.file(path: authority, format: .pem)])
            $0.clientCertificateVerification = .noHostnameVerification
        }
    }

    /// A gRPC client's: it presents this identity and checks the server's
    /// certificate against the authority and the host dialled.
    var rpcClientSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        .mTLS(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: privateKey, format: .pem)) {
            $0.trustRoots = .certificates([.file(path: authority, format: .pem)])
        }
    }
}
