import Foundation
import ParleyCore
import ParleyDeployment
import ParleyTestSupport
import Testing

/// The operator's scripts, run as an operator would, from a clone.
@Suite(.serialized, .timeLimit(.minutes(5))) struct OpsScriptTests {
    private static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs `command` with bash in `directory`, up to `timeout`. Its output and
    /// exit status go through files: the servers it starts in the background
    /// inherit its descriptors, and Foundation's `Process` may never see it exit.
    private func shell(_ command: String, in directory: String, timeout: Duration = .seconds(90)) async throws -> (status: Int32, output: String) {
        let stem = directory + "/../shell-\(UInt32.random(in: 0...UInt32.max))"
        var environment = ProcessInfo.processInfo.environment
        environment["PARLEY_BIN"] = LocalRegion.binary
        let process = try ChildProcess(
            name: "shell", executable: "/bin/bash",
            arguments: ["-c", "cd '\(directory)' && (\(command)) >'\(stem).log' 2>&1 </dev/null; echo $? >'\(stem).status'"],
            logPath: stem + ".outer.log", environment: environment
        )
        let finished = try await eventually(timeout) { FileManager.default.fileExists(atPath: stem + ".status") }
        let output = (try? String(contentsOfFile: stem + ".log", encoding: .utf8)) ?? ""
        guard finished, let status = Int32(((try? String(contentsOfFile: stem + ".status", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) else {
            await process.stop()
            throw TestSupportError("`\(command)` did not finish within \(timeout):\n\(output)")
        }
        return (status, output)
    }

    /// A clone in a folder only root may enter (root's home, `mktemp -d`):
    /// `ops/up` still starts the region, its PostgreSQL (a Patroni pair, the
    /// default) keeping its files where the postgres user can reach them, and
    /// `ops/down` stops all of it.
    @Test func opsUpRunsARegionFromACloneThePostgresUserCannotEnter() async throws {
        let root = try TestRun.scratch("private-clone")
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: root)
        let clone = root + "/clone"
        try FileManager.default.createDirectory(atPath: clone, withIntermediateDirectories: true)
        for folder in ["ops", "regions"] {
            try FileManager.default.copyItem(atPath: "\(Self.repository)/\(folder)", toPath: "\(clone)/\(folder)")
        }
        // One region, on free ports.
        let ports = try (0..<19).map { _ in try FreePort.next() }
        let addresses = ports.map { "127.0.0.1:\($0)" }
        var eu = try RegionFile.decode(Array(try Data(contentsOf: URL(fileURLWithPath: "\(clone)/regions/eu.json"))))
        eu.postgres.port = ports[0]
        eu.postgres.ha = .init(
            nodes: Array(addresses[9...10]), patroni: Array(addresses[11...12]), etcd: Array(addresses[13...15]), etcdPeers: Array(addresses[16...18])
        )
        eu.redis.port = ports[1]
        eu.logic = ["127.0.0.1:\(ports[2])", "127.0.0.1:\(ports[3])"]
        eu.gates = [.init(node: "127.0.0.1:\(ports[4])", tcp: "127.0.0.1:\(ports[5])", webSocket: "127.0.0.1:\(ports[6])")]
        eu.sync = "127.0.0.1:\(ports[7])"
        eu.syncStatus = "127.0.0.1:\(ports[8])"
        eu.route = nil
        try JSONEncoder().encode(eu).write(to: URL(fileURLWithPath: "\(clone)/regions/eu.json"))
        var cluster = try ClusterFile.decode(Array(try Data(contentsOf: URL(fileURLWithPath: "\(clone)/regions/cluster.json"))))
        cluster.regions = ["eu"]
        try JSONEncoder().encode(cluster).write(to: URL(fileURLWithPath: "\(clone)/regions/cluster.json"))

        // Every region of the clone's cluster (eu alone), so the push sink ops/up started stops too.
        let down = { try await self.shell("bash ops/down; rm -rf \"$(readlink -f run)\"", in: clone) }
        let up: (status: Int32, output: String)
        do { up = try await shell("bash ops/up eu", in: clone) } catch {
            _ = try? await down()
            throw error
        }
        #expect(up.status == 0, "\(up.output)")
        #expect(up.output.contains("run/ links to"), "\(up.output)")
        #expect(FreePort.isAccepting(ports[5]), "eu's gate accepts clients")
        #expect(up.output.contains("Patroni pair behind HAProxy"), "\(up.output)")
        #expect(FreePort.isAccepting(ports[9]) && FreePort.isAccepting(ports[10]), "both PostgreSQL nodes run")
        // Stopped and started again on its data: the pair comes back whichever
        // node was primary last (a switchover first makes it the second).
        let switched = try await shell("ops/ha-region switchover --dir run/eu/ha", in: clone)
        #expect(switched.status == 0, "\(switched.output)")
        let stoppedOnce = try await shell("bash ops/down eu", in: clone)
        #expect(stoppedOnce.status == 0, "\(stoppedOnce.output)")
        let again = try await shell("bash ops/up eu", in: clone)
        #expect(again.status == 0 && again.output.contains("region eu up"), "\(again.output)")
        #expect(FreePort.isAccepting(ports[5]), "eu's gate accepts clients again")
        let stopped = try await down()
        #expect(stopped.status == 0 && stopped.output.contains("region eu down"), "\(stopped.output)")
        #expect(!FreePort.isAccepting(ports[0]), "ops/down stopped eu's HAProxy")
        for port in ports[9...18] { #expect(!FreePort.isAccepting(port), "ops/down stopped the pair and etcd (port \(port))") }
    }
}
