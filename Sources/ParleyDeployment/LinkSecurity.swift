import ParleyCore

/// How a deployment's processes and clients talk: TLS with the certificates
/// of one folder, or plaintext (docs/ARCHITECTURE.md, "TLS").
public enum LinkSecurity: Sendable, Equatable {
    case plaintext
    case tls(CertificateFolder)

    /// The folder, when links are TLS.
    public var certificates: CertificateFolder? {
        if case .tls(let folder) = self { folder } else { nil }
    }

    public var isTLS: Bool { certificates != nil }

    /// A gate's client addresses as URLs: `ws://` or `wss://`, `http://` or `https://`.
    public func webSocketURL(_ gate: RegionFile.Gate) -> String { "\(isTLS ? "wss" : "ws")://\(gate.webSocket)/ws" }
    public func longPollURL(_ gate: RegionFile.Gate) -> String { "\(isTLS ? "https" : "http")://\(gate.webSocket)/lp" }
}

/// The files `parley certs` writes: the cluster's certificate authority and,
/// for each process, its certificate chain and private key.
public struct CertificateFolder: Sendable, Equatable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The authority every process and client trusts.
    public var authority: String { "\(path)/ca.pem" }
    /// The authority's private key: only `parley certs` reads it.
    public var authorityKey: String { "\(path)/ca.key" }
    public func certificate(of process: ProcessName) -> String { "\(path)/\(process.name).pem" }
    public func privateKey(of process: ProcessName) -> String { "\(path)/\(process.name).key" }
}

/// A process of the deployment, as its certificate names it: `eu-gate-0`,
/// `eu-logic-1`, `eu-sync`, `eu-route`, `eu-ext-0`; the role is the
/// certificate's organizational unit.
public struct ProcessName: Sendable, Hashable, CustomStringConvertible {
    public enum Role: String, Sendable, CaseIterable { case gate, logic, sync, route, ext }

    public let region: String
    public let role: Role
    /// Which instance of the role (none for one-per-region roles).
    public let index: Int?

    public init(region: String, role: Role, index: Int? = nil) {
        self.region = region
        self.role = role
        self.index = index
    }

    public var name: String { index.map { "\(region)-\(role.rawValue)-\($0)" } ?? "\(region)-\(role.rawValue)" }
    public var description: String { name }

    /// Every process a region file describes.
    public static func all(in region: RegionFile) -> [ProcessName] {
        region.gates.indices.map { ProcessName(region: region.name, role: .gate, index: $0) }
            + region.logic.indices.map { ProcessName(region: region.name, role: .logic, index: $0) }
            + [ProcessName(region: region.name, role: .sync)]
            + (region.route == nil ? [] : [ProcessName(region: region.name, role: .route)])
            + (0..<(region.ext?.instances ?? 1)).map { ProcessName(region: region.name, role: .ext, index: $0) }
    }
}

extension RegionFile {
    /// The hosts `process` is reached at, as its region file says: the names
    /// its certificate must carry.
    public func hosts(of process: ProcessName) -> [String] {
        let addresses: [String?] = switch process.role {
        case .gate: process.index.flatMap { gates.indices.contains($0) ? gates[$0] : nil }.map { [$0.tcp, $0.webSocket, $0.node] } ?? []
        case .logic: process.index.flatMap { logic.indices.contains($0) ? [logic[$0]] : nil } ?? []
        case .sync: [sync, syncStatus]
        case .route: [route]
        case .ext: [ext?.platform]
        }
        return addresses.compactMap { $0.flatMap { try? Endpoint($0).host } }
    }
}
