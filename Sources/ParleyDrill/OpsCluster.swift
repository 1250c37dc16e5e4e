import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyCore
import ParleyDeployment
import ParleyFault
import Synchronization

/// The cluster `ops/up` runs on this machine, as a drill sees it: every
/// process of a region is named by the pid files in `run/<region>/` (and its
/// postmaster by `pgdata/postmaster.pid`); `ops/up <region>` starts it again.
/// Partitions and slow links need the links between regions through the
/// link proxy (`PARLEY_LINK_PROXY=1 ops/up`, admin on `proxyAdmin`). A
/// region whose PostgreSQL runs under Patroni (`run/<region>/ha`, the
/// default of ops/up) is driven through `ops/ha-region`.
public final class OpsCluster: DrillCluster {
    public let regionsDirectory: String
    let runDirectory: String
    let upScript: String
    let highAvailabilityScript: String
    /// The `parley` executable the restarted region runs.
    let parleyBinary: String
    let proxyAdmin = "127.0.0.1:7590"
    private let partitioned = Mutex<PortBlock?>(nil)
    private let linksChanged = Mutex(false)
    private let killed = Mutex(false)

    public init(
        regionsDirectory: String = "regions", runDirectory: String = "run", upScript: String = "ops/up",
        highAvailabilityScript: String = "ops/ha-region", parleyBinary: String
    ) {
        self.regionsDirectory = regionsDirectory
        self.runDirectory = runDirectory
        self.upScript = upScript
        self.highAvailabilityScript = highAvailabilityScript
        self.parleyBinary = parleyBinary
    }

    public func kill(region: String) async throws {
        let folder = "\(runDirectory)/\(region)"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        var pids = files.filter { $0.hasSuffix(".pid") }.compactMap { Self.firstLineNumber(of: "\(folder)/\($0)") }
        if let postmaster = Self.firstLineNumber(of: "\(folder)/pgdata/postmaster.pid") { pids.append(postmaster) }
        guard pids.contains(where: ProcessTable.isAlive) else {
            throw DrillError("nothing of region \(region) runs (pid files in \(folder)/): start it with ops/up")
        }
        killed.withLock { $0 = true }
        let survivors = await ProcessTable.killTrees(pids)
        // The Patroni pair, HAProxy and etcd right after (the script takes a
        // moment to start: the region's own processes go first, at once).
        if isHighlyAvailable(region: region) { try highAvailability(region, ["kill", "all"]) }
        guard survivors.isEmpty else { throw DrillError("processes of \(region) survived SIGKILL: \(survivors)") }
    }

    public func isHighlyAvailable(region: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(runDirectory)/\(region)/ha/ha.json")
    }

    public func switchover(region: String) async throws {
        try highAvailability(region, ["switchover"])
    }

    public func killEtcdMember(region: String) async throws {
        killed.withLock { $0 = true }
        try highAvailability(region, ["kill", "etcd", "0"])
    }

    /// `ops/ha-region <arguments> --dir run/<region>/ha`.
    private func highAvailability(_ region: String, _ arguments: [String]) throws {
        let (status, output) = try Subprocess.run(highAvailabilityScript, arguments + ["--dir", "\(runDirectory)/\(region)/ha"])
        guard status == 0 else { throw DrillError("\(highAvailabilityScript) \(arguments.joined(separator: " ")) for \(region) failed: \(output)") }
    }

    public func killPostgres(region: String) async throws {
        if isHighlyAvailable(region: region) {
            killed.withLock { $0 = true }
            try highAvailability(region, ["kill", "leader"])
            return
        }
        let folder = "\(runDirectory)/\(region)"
        guard let postmaster = Self.firstLineNumber(of: "\(folder)/pgdata/postmaster.pid"), ProcessTable.isAlive(postmaster) else {
            throw DrillError("region \(region)'s PostgreSQL is not running (\(folder)/pgdata/postmaster.pid)")
        }
        killed.withLock { $0 = true }
        let survivors = await ProcessTable.killTrees([postmaster])
        guard survivors.isEmpty else { throw DrillError("PostgreSQL processes of \(region) survived SIGKILL: \(survivors)") }
    }

    public func partition(region: String) async throws {
        try await setLinks(of: region, to: LinkFaults(state: .blackhole))
        let block = try PortBlock(ports: try Drill.partitionPorts(of: regionFile(region)))
        partitioned.withLock { $0 = block }
    }

    public func slowLinks(region: String, delay: Duration) async throws {
        var faults = LinkFaults.healthy
        faults.delayMs = Int(delay.components.seconds * 1_000 + delay.components.attoseconds / 1_000_000_000_000_000)
        try await setLinks(of: region, to: faults)
    }

    /// Lifts a partition, restores the links, and `ops/up <region>` starts
    /// what is not running (clearing a dead postmaster's locks).
    public func heal(region: String) async throws {
        if let block = partitioned.withLock({ $0.take() }) { try block.lift() }
        if linksChanged.withLock({ $0 }) { try await setLinks(of: region, to: .healthy) }
        guard killed.withLock({ $0 }) else { return }
        killed.withLock { $0 = false }
        let folder = "\(runDirectory)/\(region)"
        var environment = ProcessInfo.processInfo.environment
        environment["PARLEY_BIN"] = parleyBinary
        // A cluster started with the link proxy keeps it: the region rejoins through it.
        if let proxy = Self.firstLineNumber(of: "\(runDirectory)/proxy.pid"), ProcessTable.isAlive(proxy) {
            environment["PARLEY_LINK_PROXY"] = "1"
        }
        let up = Process()
        up.executableURL = URL(fileURLWithPath: "/bin/bash")
        up.arguments = [upScript, region]
        up.environment = environment
        // To a file, not a pipe: the servers ops/up leaves running would hold a pipe open.
        let logPath = "\(folder)/up.log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else { throw DrillError("cannot write \(logPath)") }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer { try? log.close() }
        up.standardInput = FileHandle.nullDevice
        up.standardOutput = log
        up.standardError = log
        try up.run()
        // Foundation's Process has been seen never to notice its child exit
        // here; /proc tells, and ops/up's last line says whether it succeeded.
        while ProcessTable.isAlive(up.processIdentifier) { try await Task.sleep(for: .milliseconds(50)) }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        guard text.contains("region \(region) up:") else {
            throw DrillError("\(upScript) \(region) failed: \(text.suffix(2_000))")
        }
    }

    private func regionFile(_ name: String) throws -> RegionFile {
        try RegionFile.decode(Array(Data(contentsOf: URL(fileURLWithPath: "\(regionsDirectory)/\(name).json"))))
    }

    /// Every link between `region` and the others, both ways, through the link proxy's admin API.
    private func setLinks(of region: String, to faults: LinkFaults) async throws {
        guard let proxy = Self.firstLineNumber(of: "\(runDirectory)/proxy.pid"), ProcessTable.isAlive(proxy) else {
            throw DrillError("this scenario needs the links between regions through the link proxy: start the cluster with PARLEY_LINK_PROXY=1 ops/up")
        }
        let cluster = try ClusterFile.decode(Array(Data(contentsOf: URL(fileURLWithPath: "\(regionsDirectory)/cluster.json"))))
        for peer in cluster.regions where peer != region {
            for link in ["\(region)-\(peer)", "\(peer)-\(region)"] {
                do {
                    try await ProxyAdmin(address: proxyAdmin, adminToken: try cluster.resolvedAdminToken()).set(link, faults)
                } catch {
                    throw DrillError("link proxy at \(proxyAdmin) refused link \(link): \(error)")
                }
            }
        }
        linksChanged.withLock { $0 = faults != .healthy }
    }

    private static func firstLineNumber(of path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").first.flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }
}
