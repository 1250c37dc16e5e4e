/// What a process presents in TLS, as files: its certificate chain (PEM,
/// leaf first) and private key, and the authority whose certificates it
/// accepts from peers (docs/ARCHITECTURE.md, "TLS").
public struct TLSIdentity: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String
    public var authority: String

    public init(certificate: String, privateKey: String, authority: String) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.authority = authority
    }
}
