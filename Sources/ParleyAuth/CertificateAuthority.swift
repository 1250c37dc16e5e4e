import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's own certificate authority, for a deployment without one
/// (the local cluster, tests): a P-256 key that signs one certificate per
/// process. Each certificate names its process (common name) and its role
/// (organizational unit), serves and authenticates (server and client
/// auth), and lists the hosts it answers on (docs/ARCHITECTURE.md, "TLS").
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    private let key: Certificate.PrivateKey

    /// A new authority, valid for ten years.
    public static func create(name: String = "Parley cluster authority") throws -> CertificateAuthority {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName {
            OrganizationName("Parley")
            CommonName(name)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3_600), notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: key
        )
        return CertificateAuthority(certificate: certificate, key: key)
    }

    /// The authority written by `pem`, read back.
    public init(certificatePEM: String, keyPEM: String) throws {
        self.init(certificate: try Certificate(pemEncoded: certificatePEM), key: try Certificate.PrivateKey(pemEncoded: keyPEM))
    }

    private init(certificate: Certificate, key: Certificate.PrivateKey) {
        self.certificate = certificate
        self.key = key
    }

    /// The authority's certificate and private key, PEM-encoded.
    public var pem: (certificate: String, key: String) {
        get throws { (try certificate.serializeAsPEM().pemString, try key.serializeAsPEM().pemString) }
    }

    /// A certificate for one process, valid for a year: `name` (common name),
    /// `role` (organizational unit) and the `hosts` (IP addresses or DNS
    /// names) clients reach it by. Returns its chain and key, PEM-encoded.
    public func issue(name: String, role: String, hosts: [String]) throws -> (certificate: String, key: String) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let names: [GeneralName] = Array(Set(hosts)).sorted().map { host in
            if let address = IPAddressBytes(host) { .ipAddress(ASN1OctetString(contentBytes: address[...])) } else { .dnsName(host) }
        }
        let now = Date()
        let issued = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3_600), notValidAfter: now.addingTimeInterval(365 * 86_400),
            issuer: certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Parley")
                OrganizationalUnitName(role)
                CommonName(name)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: self.key
        )
        return (try issued.serializeAsPEM().pemString, try key.serializeAsPEM().pemString)
    }
}

/// An IPv4 or IPv6 address's bytes, or nil for a host name.
private func IPAddressBytes(_ host: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
}
