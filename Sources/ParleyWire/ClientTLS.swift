import NIOCore
import NIOSSL

/// A client's TLS towards gates and health endpoints: the server's
/// certificate must chain to `authority` (a PEM file) or, without one, to an
/// authority the system trusts, and must name the host dialled. Built once
/// per client: the context reads the authority's file.
public struct ClientTLS: Sendable {
    public let configuration: TLSConfiguration
    public let context: NIOSSLContext

    public init(trusting authority: String?) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let authority { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(authority)) }
        configuration.minimumTLSVersion = .tlsv12
        self.configuration = configuration
        context = try NIOSSLContext(configuration: configuration)
    }

    /// The handler for a connection to `host`: a name goes in SNI and is
    /// checked against the certificate; an IP address (which SNI cannot
    /// carry) against the certificate's addresses.
    public func handler(host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: Self.isAddress(host) ? nil : host)
    }

    public static func isAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
