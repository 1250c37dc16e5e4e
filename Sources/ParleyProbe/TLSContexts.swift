import NIOCore
import NIOSSL
import ParleyCore

extension TLSIdentity {
    /// A server presenting this identity.
    public func serverConfiguration() throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: privateKey, format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}

/// TLS settings from a deployment's certificate files.
public enum TLSContexts {
    /// A client trusting only the certificates `authority` (a PEM file) signed
    /// (nil: those the system trusts), checking that the server's
    /// certificate names the host it dialled.
    public static func client(authority: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let authority { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(authority)) }
        configuration.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: configuration)
    }

    /// The client's handler for a connection to `host`: a name goes in SNI and
    /// is checked against the certificate; an IP address is checked against
    /// the certificate's addresses (SNI carries no addresses).
    public static func clientHandler(_ context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: isAddress(host) ? nil : host)
    }

    private static func isAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
