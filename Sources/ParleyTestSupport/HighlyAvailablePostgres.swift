import Foundation
import ParleyFault

/// What a test region's processes write to: one PostgreSQL server
/// (`PostgresServer`) or a highly available pair under Patroni
/// (`HighlyAvailablePostgres`). Either way the region file names one
/// address, which always reaches the server that takes writes.
public protocol RegionDatabase: Sendable {
    /// The address the region's processes connect to.
    var port: Int { get }
    /// The `postgres` user's password (TCP clients need it), and a file
    /// holding it, for region files.
    var password: String { get }
    var passwordFile: String { get }
    /// SIGKILL to every process of it at once (a power loss).
    func kill9() async
    /// Starts it again on its data after `kill9`.
    func restart() async throws
    func stop() async
}

extension RegionDatabase {
    /// Runs SQL through psql (in the `parley` database unless told) on the
    /// server that takes writes, and returns its unaligned output.
    public func psql(_ sql: String, database: String = PostgresServer.database) throws -> String {
        try PostgresServer.run(PostgresServer.binDirectory() + "/psql", [
            "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ], password: password)
    }

    /// Runs `sql` in its own psql session in the background (a transaction
    /// that holds a lock for a while, say); stop the returned process to end it.
    public func psqlInBackground(_ sql: String) throws -> ChildProcess {
        try ChildProcess(
            name: "psql", executable: try PostgresServer.binDirectory() + "/psql",
            arguments: ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", PostgresServer.database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            logPath: try TestRun.scratch("psql") + "/psql.log",
            environment: ProcessInfo.processInfo.environment.merging(["PGPASSWORD": password]) { $1 }
        )
    }
}

extension PostgresServer: RegionDatabase {}

/// A region's PostgreSQL as production runs it (docs/DEPLOYMENT.md): an etcd
/// cluster of three members, two Patroni nodes (a primary and a synchronous
/// standby) and HAProxy in front, which sends every connection to the
/// current primary. Started and driven by `ops/ha-region`, the script
/// `ops/up` and the drills use, on free loopback ports.
public final class HighlyAvailablePostgres: RegionDatabase {
    /// HAProxy's port: what the region file names.
    public let port: Int
    public let password: String
    public let passwordFile: String
    /// The folder `ops/ha-region` keeps the region's servers in.
    public let directory: String

    public static func start(name: String) async throws -> HighlyAvailablePostgres {
        let root = try TestRun.scratch(name)
        let password = "pg-\(UUID().uuidString)"
        let passwordFile = root + "/password"
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
        // The postgres user runs Patroni and must read the password and enter the folder.
        chmod(root, 0o755)
        try PostgresServer.run("/bin/chown", ["postgres:postgres", passwordFile])
        let ports = try (0..<11).map { _ in "127.0.0.1:\(try FreePort.next())" }
        let server = HighlyAvailablePostgres(
            port: Int(ports[0].split(separator: ":")[1])!, password: password, passwordFile: passwordFile, directory: root + "/ha"
        )
        do {
            try server.script([
                "start", "--scope", name, "--proxy", ports[0], "--nodes", ports[1...2].joined(separator: ","),
                "--patroni", ports[3...4].joined(separator: ","), "--etcd", ports[5...7].joined(separator: ","),
                "--etcd-peers", ports[8...10].joined(separator: ","), "--password-file", passwordFile, "--fsync", "off",
            ])
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    private init(port: Int, password: String, passwordFile: String, directory: String) {
        self.port = port
        self.password = password
        self.passwordFile = passwordFile
        self.directory = directory
    }

    /// One member as Patroni reports it.
    public struct Member: Decodable, Sendable {
        public let name: String
        /// `leader`, `sync_standby` or `replica`.
        public let role: String
        public let state: String
        public let timeline: Int?
    }

    private struct Status: Decodable {
        let members: [Member]
        let writable: Bool
    }

    /// Patroni's members, and whether HAProxy reaches a primary that takes writes.
    public func status() throws -> (members: [Member], writable: Bool) {
        // Its first line: the JSON (anything after it is stderr).
        let line = try script(["status"]).split(separator: "\n").first.map(String.init) ?? ""
        let status = try JSONDecoder().decode(Status.self, from: Data(line.utf8))
        return (status.members, status.writable)
    }

    /// The current primary's name (`pg0` or `pg1`), if any.
    public func leader() throws -> String? {
        try status().members.first { $0.role == "leader" && $0.state == "running" }?.name
    }

    /// SIGKILL to the primary's Patroni and PostgreSQL: the machine it ran on is gone.
    public func killLeader() throws { try script(["kill", "leader"]) }

    /// A planned switchover to the synchronous standby; returns once it takes writes.
    public func switchover() throws { try script(["switchover"]) }

    /// SIGKILL to one etcd member.
    public func killEtcdMember(_ index: Int) throws { try script(["kill", "etcd", "\(index)"]) }

    /// Starts whatever is not running (a killed node rejoins as a standby).
    public func heal() throws { try script(["start"]) }

    public func kill9() async { _ = try? script(["kill", "all"]) }

    public func restart() async throws { try script(["start"]) }

    public func stop() async { _ = try? script(["stop"]) }

    @discardableResult
    private func script(_ arguments: [String]) throws -> String {
        let (status, output) = try Subprocess.run(Self.scriptPath, arguments + ["--dir", directory])
        guard status == 0 else { throw TestSupportError("ops/ha-region \(arguments.joined(separator: " ")) failed (\(status)): \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let scriptPath = FileManager.default.currentDirectoryPath + "/ops/ha-region"
}
