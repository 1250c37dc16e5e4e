import Foundation
import ParleyFault
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real, ephemeral PostgreSQL server: its own data dir, free loopback port
/// and socket dir, run as the `postgres` user when the tests run as root
/// (PostgreSQL refuses to run as root).
public final class PostgresServer: Sendable {
    public let port: Int
    /// The `postgres` user's password: the server takes TCP clients only with
    /// it (SCRAM), as a deployment's does.
    public let password: String
    /// A file holding it, for region files (`passwordFile`).
    public let passwordFile: String
    public let dataDirectory: String
    private let executable: String
    private let arguments: [String]
    private let logPath: String
    private let current: Mutex<ChildProcess>
    var process: ChildProcess { current.withLock { $0 } }

    public static let database = "parley"

    /// Starts a server with a `parley` database. Fails, never skips, when it cannot.
    /// With `tls` (a certificate chain and its key, PEM files), the server
    /// takes TCP clients only over TLS, as one on another host should.
    public static func start(name: String = "postgres", tls: (certificate: String, privateKey: String)? = nil) async throws -> PostgresServer {
        let bin = try binDirectory()
        let root = try TestRun.scratch(name)
        let data = root + "/data"
        let sockets = root + "/sock"
        try FileManager.default.createDirectory(atPath: sockets, withIntermediateDirectories: true)
        let asPostgres = getuid() == 0
        if asPostgres { try run("/bin/chown", ["-R", "postgres:postgres", root]) }
        let password = "pg-\(UUID().uuidString)"
        let passwordFile = root + "/password"
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
        if asPostgres { try run("/bin/chown", ["postgres:postgres", passwordFile]) }
        try run(bin + "/initdb", [
            "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=\(passwordFile)",
            "-E", "UTF8", "--no-locale", "--no-sync",
        ], asPostgres: asPostgres)
        var tlsArguments: [String] = []
        if let tls {
            // Its own copies: PostgreSQL wants the key owned by it and readable by it alone.
            let (certificate, key) = (root + "/server.pem", root + "/server.key")
            try FileManager.default.copyItem(atPath: tls.certificate, toPath: certificate)
            try FileManager.default.copyItem(atPath: tls.privateKey, toPath: key)
            chmod(key, 0o600)
            if asPostgres { try run("/bin/chown", ["postgres:postgres", certificate, key]) }
            tlsArguments = ["-c", "ssl=on", "-c", "ssl_cert_file=\(certificate)", "-c", "ssl_key_file=\(key)"]
            // TCP clients over TLS only: every `host` line becomes `hostssl`.
            let hba = data + "/pg_hba.conf"
            let rules = try String(contentsOfFile: hba, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasPrefix("host ") ? "hostssl" + $0.dropFirst(4) : $0 }.joined(separator: "\n")
            try rules.write(toFile: hba, atomically: false, encoding: .utf8)
        }
        let port = try FreePort.next()
        let arguments = tlsArguments + [
            "-D", data, "-p", "\(port)", "-k", sockets, "-c", "listen_addresses=127.0.0.1",
            // Test data is disposable: skip the fsyncs that make tests slow
            // (they guard against a machine crash, which no test makes). A
            // commit still waits for its WAL write, so a drill's SIGKILL
            // never loses an acknowledged transaction, as in production.
            "-c", "fsync=off", "-c", "synchronous_commit=on", "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]
        let server = try PostgresServer(
            name: name, port: port, password: password, passwordFile: passwordFile, dataDirectory: data,
            executable: asPostgres ? "/usr/sbin/runuser" : bin + "/postgres",
            arguments: asPostgres ? ["-u", "postgres", "--", bin + "/postgres"] + arguments : arguments,
            logPath: root + "/postgres.log"
        )
        do {
            try await server.waitForStartup(bin: bin)
            try run(bin + "/createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", database], password: password)
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    private init(
        name: String, port: Int, password: String, passwordFile: String, dataDirectory: String, executable: String, arguments: [String],
        logPath: String
    ) throws {
        self.port = port
        self.password = password
        self.passwordFile = passwordFile
        self.dataDirectory = dataDirectory
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
        current = Mutex(try ChildProcess(name: name, executable: executable, arguments: arguments, logPath: logPath))
    }

    /// What the server logged (connections it refused, and why).
    public var log: String { process.log }

    /// SIGKILL to the postmaster and every backend at once: what a crash of
    /// the machine does to it (the data directory stays for `restart`).
    public func kill9() async { await process.kill9Tree() }

    /// Starts the server again on its data directory and port, after `kill9`:
    /// it recovers from its write-ahead log.
    public func restart() async throws {
        StalePostgresLocks.remove(
            dataDirectory: dataDirectory, socketDirectory: (dataDirectory as NSString).deletingLastPathComponent + "/sock", port: port
        )
        let process = try ChildProcess(name: self.process.name, executable: executable, arguments: arguments, logPath: logPath)
        current.withLock { $0 = process }
        try await waitForStartup(bin: Self.binDirectory())
    }

    /// Fast shutdown: SIGINT to the postmaster aborts open transactions and
    /// exits cleanly (runuser would turn a signal to itself into a smart
    /// shutdown and a SIGKILL two seconds later). The data is then deleted;
    /// the log stays for post-mortems.
    public func stop() async {
        if process.isRunning {
            let pidFile = (try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8)) ?? ""
            if let postmaster = pidFile.split(separator: "\n").first.flatMap({ Int32($0) }) {
                kill(postmaster, SIGINT)
            } else {
                kill(process.pid, SIGINT)
            }
        }
        await process.stop(grace: .seconds(10))
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    private func waitForStartup(bin: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        try await FreePort.waitUntilAccepting(port, server: process)
        while true {
            if (try? Self.run(bin + "/pg_isready", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres"])) != nil { return }
            guard ContinuousClock.now < deadline else { throw TestSupportError("postgres not ready:\n\(process.log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    public static func binDirectory() throws -> String {
        let candidates = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?
            .compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" } ?? []
        guard let bin = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/postgres") }) else {
            throw TestSupportError("no PostgreSQL server found under /usr/lib/postgresql: run ops/setup")
        }
        return bin
    }

    /// Runs a PostgreSQL tool: as the `postgres` user, or over TCP with `password` (PGPASSWORD).
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], asPostgres: Bool = false, password: String? = nil) throws -> String {
        let (status, text) = asPostgres
            ? try Subprocess.run("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments)
            : try Subprocess.run(executable, arguments, environment: password.map { ["PGPASSWORD": $0] } ?? [:])
        guard status == 0 else {
            throw TestSupportError("\(executable) \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
