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
        let (status, output) = try Subprocess.run("iptables", ["-w"] + arguments)
        guard status == 0 else {
            throw FaultError("iptables \(arguments.joined(separator: " ")) exited \(status) (iptables installed? root?): \(output)")
        }
    }
}
