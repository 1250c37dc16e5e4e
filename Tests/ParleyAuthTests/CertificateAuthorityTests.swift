import Foundation
import ParleyAuth
import ParleyDeployment
import SwiftASN1
import Testing
import X509

/// The cluster's certificate authority and the TLS settings of cluster.json.
struct CertificateAuthorityTests {
    @Test func aProcessCertificateIsSignedByTheAuthorityAndNamesItsRoleAndHosts() throws {
        let authority = try CertificateAuthority.create()
        let pem = try authority.issue(name: "eu-gate-0", role: "gate", hosts: ["127.0.0.1", "gate.eu.example", "127.0.0.1"])
        let certificate = try Certificate(pemEncoded: pem.certificate)
        #expect(authority.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        #expect(certificate.issuer == authority.certificate.subject)
        #expect(certificate.subject.description.contains("CN=eu-gate-0") && certificate.subject.description.contains("OU=gate"))
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(Array(names) == [.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("gate.eu.example")])
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        let usages = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(usages.contains(.serverAuth) && usages.contains(.clientAuth))
        // The key belongs to the certificate.
        let key = try Certificate.PrivateKey(pemEncoded: pem.key)
        #expect(key.publicKey == certificate.publicKey)
    }

    @Test func anAuthorityReadBackSignsCertificatesTheFirstOneVerifies() throws {
        let authority = try CertificateAuthority.create()
        let pem = try authority.pem
        let again = try CertificateAuthority(certificatePEM: pem.certificate, keyPEM: pem.key)
        let certificate = try Certificate(pemEncoded: try again.issue(name: "eu-sync", role: "sync", hosts: ["localhost"]).certificate)
        #expect(authority.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        #expect(try authority.certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
    }

    @Test func linksArePlaintextOnlyWhenAskedFor() throws {
        var cluster = ClusterFile(regions: ["eu"], tokenSecret: "s")
        #expect(throws: RegionFileError.self) { try cluster.resolvedSecurity(relativeTo: "regions", environment: [:]) }
        #expect(try cluster.resolvedSecurity(relativeTo: "regions", environment: ["PARLEY_TLS": "off"]) == .plaintext)
        cluster.plaintext = true
        #expect(try cluster.resolvedSecurity(relativeTo: "regions", environment: [:]) == .plaintext)
        cluster.tls = .init(certificates: "../run/certs")
        let security = try cluster.resolvedSecurity(relativeTo: "regions", environment: [:])
        #expect(security.certificates?.authority == "regions/../run/certs/ca.pem")
        #expect(security.certificates?.certificate(of: ProcessName(region: "eu", role: .gate, index: 0)) == "regions/../run/certs/eu-gate-0.pem")
        #expect(try cluster.resolvedSecurity(relativeTo: "regions", environment: ["PARLEY_TLS": "off"]) == .plaintext)
        #expect(throws: RegionFileError.self) { try cluster.resolvedSecurity(relativeTo: "regions", environment: ["PARLEY_TLS": "maybe"]) }
        cluster.tls = .init(certificates: "/etc/parley/certs")
        #expect(try cluster.resolvedSecurity(relativeTo: "regions", environment: [:]).certificates?.privateKey(of: .init(region: "us", role: .sync)) == "/etc/parley/certs/us-sync.key")
    }

    @Test func everyProcessOfARegionFileGetsANameAndItsHosts() throws {
        var region = RegionFile(
            name: "eu", location: .init(latitude: 0, longitude: 0), clientNetworks: [],
            postgres: .init(host: "127.0.0.1", port: 1), redis: .init(host: "127.0.0.1", port: 2),
            logic: ["10.0.0.1:7120", "10.0.0.2:7120"],
            gates: [.init(node: "10.0.1.1:7110", tcp: "gate.eu.example:7100", webSocket: "gate.eu.example:7101")],
            sync: "10.0.2.1:7130", durability: "local"
        )
        region.route = "route.eu.example:7140"
        #expect(ProcessName.all(in: region).map(\.name) == ["eu-gate-0", "eu-logic-0", "eu-logic-1", "eu-sync", "eu-route", "eu-ext-0"])
        #expect(region.hosts(of: .init(region: "eu", role: .gate, index: 0)) == ["gate.eu.example", "gate.eu.example", "10.0.1.1"])
        #expect(region.hosts(of: .init(region: "eu", role: .logic, index: 1)) == ["10.0.0.2"])
        #expect(region.hosts(of: .init(region: "eu", role: .sync)) == ["10.0.2.1"])
    }
}
