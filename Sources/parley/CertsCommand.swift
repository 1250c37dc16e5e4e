import ArgumentParser
import Foundation
import ParleyAuth
import ParleyDeployment

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Make the cluster's certificate authority and a certificate for every process of its region files.",
        discussion: """
            Writes into the folder cluster.json's tls.certificates names (or --out): ca.pem and ca.key, \
            and <region>-<role>[-<index>].pem and .key for each process. An existing authority is kept \
            and signs the new certificates; existing certificates are kept unless --renew. \
            Keys are written readable by their owner only.
            """
    )

    @Option(help: "Folder holding cluster.json and one <region>.json per region.")
    var regions = "regions"

    @Option(help: "Where to write (default: cluster.json's tls.certificates).")
    var out: String?

    @Flag(help: "Issue every process certificate again, with the same authority.")
    var renew = false

    func run() throws {
        let cluster = try ClusterFile.decode(try read("\(regions)/cluster.json"))
        guard let folderPath = out ?? cluster.tls.map({ $0.certificates.hasPrefix("/") ? $0.certificates : "\(regions)/\($0.certificates)" }) else {
            throw ValidationError("cluster.json has no tls.certificates; name a folder with --out")
        }
        let folder = CertificateFolder(path: folderPath)
        try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
        let authority: CertificateAuthority
        if FileManager.default.fileExists(atPath: folder.authorityKey) {
            authority = try CertificateAuthority(
                certificatePEM: String(decoding: try read(folder.authority), as: UTF8.self),
                keyPEM: String(decoding: try read(folder.authorityKey), as: UTF8.self)
            )
        } else {
            authority = try CertificateAuthority.create()
            let pem = try authority.pem
            try write(pem.key, to: folder.authorityKey, secret: true)
            try write(pem.certificate, to: folder.authority, secret: false)
            print("certs: new authority \(folder.authority)")
        }
        var issued = 0
        for name in cluster.regions {
            let region = try RegionFile.decode(try read("\(regions)/\(name).json"))
            for process in ProcessName.all(in: region) {
                let certificate = folder.certificate(of: process)
                if !renew, FileManager.default.fileExists(atPath: certificate) { continue }
                let pem = try authority.issue(name: process.name, role: process.role.rawValue, hosts: region.hosts(of: process) + ["localhost"])
                try write(pem.key, to: folder.privateKey(of: process), secret: true)
                try write(pem.certificate, to: certificate, secret: false)
                issued += 1
            }
        }
        print("certs: \(issued) certificates issued in \(folder.path)")
    }

    private func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        return Array(data)
    }

    /// Writes atomically; a secret is created readable by its owner only.
    private func write(_ text: String, to path: String, secret: Bool) throws {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(
            atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644]
        ) else { throw ValidationError("cannot write \(temporary)") }
        guard rename(temporary, path) == 0 else { throw ValidationError("cannot write \(path)") }
    }
}
