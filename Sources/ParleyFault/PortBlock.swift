import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A partition on this machine: every TCP packet to the given loopback
/// ports is dropped (iptables, in a chain of its own so lifting it touches
/// nothing else). Established connections go silent, as across a real
/// partition, rather than being reset.
public final class PortBlock: Sendable {
    public let chain: String
    public let ports: [Int]

    /// Starts dropping packets to `ports`. Needs root and iptables (ops/setup installs it).
    public init(ports: [Int]) throws {
        // iptables chain names are at most 28 characters.
        chain = "PARLEY-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        self.ports = ports
        try Self.iptables(["-N", chain])
        for port in ports { try Self.iptables(["-A", chain, "-p", "tcp", "--dport", "\(port)", "-j", "DROP"]) }
        try Self.iptables(["-I", "INPUT", "-j", chain])
    }

    /// Lets the packets through again.
    public func lift() throws {
        try Self.iptables(["-D", "INPUT", "-j", chain])
        try Self.iptables(["-F", chain])
        try Self.iptables(["-X", chain])
    }

    private static func iptables(_ arguments: [String]) throws {
        let status = try run(["iptables", "-w"] + arguments)
        guard status == 0 else { throw PortBlockError("iptables \(arguments.joined(separator: " ")) exited \(status) (iptables installed? root?)") }
    }

    /// posix_spawn and waitpid: Foundation's Process has been seen to miss
    /// its child's exit on this machine.
    private static func run(_ command: [String]) throws -> Int32 {
        var actions: posix_spawn_file_actions_t = .init()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, command[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw PortBlockError("cannot run \(command[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

public struct PortBlockError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
