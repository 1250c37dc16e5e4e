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
