import NIOCore
import NIOPosix
import ParleyCore
import ServiceLifecycle

/// Probes every region at a fixed interval and feeds the route table. A
/// region is healthy when its first gate accepts a TCP connection and its
/// sync answers `GET /status` with 200, each within the probe timeout.
struct RegionProber: Service {
    let table: RouteTable
    let settings: ClusterFile.RouteSettings

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            await withDiscardingTaskGroup { group in
                for region in table.regions {
                    group.addTask { table.record(region.name, error: await probe(region)) }
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(settings.probeIntervalMs)) }
        }
    }

    /// nil when healthy, else what failed.
    private func probe(_ region: RegionFile) async -> String? {
        guard let gate = region.gates.first else { return "no gate in the region file" }
        do {
            let timeout = Duration.milliseconds(settings.probeTimeoutMs)
            try await within(timeout) { try await connect(gate.tcp) { _, _ in } }
            if let status = region.syncStatus {
                try await within(timeout) {
                    try await connect(status) { inbound, outbound in
                        try await outbound.write(ByteBuffer(string: "GET /status HTTP/1.1\r\nHost: \(status)\r\nConnection: close\r\n\r\n"))
                        var head = ""
                        for try await chunk in inbound {
                            head += String(buffer: chunk)
                            if head.contains("\r\n") { break }
                        }
                        guard head.hasPrefix("HTTP/1.1 200") else { throw ProbeError("sync status \(status) answered \(head.prefix(40))") }
                    }
                }
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Connects to `host:port` and runs `exchange` on the connection, then closes it.
    private func connect(
        _ address: String,
        _ exchange: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void
    ) async throws {
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ProbeError("bad address \(address)") }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(settings.probeTimeoutMs)))
            .connect(host: String(parts[0]), port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        try await channel.executeThenClose { inbound, outbound in try await exchange(inbound, outbound) }
    }

    private func within(_ timeout: Duration, _ work: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw ProbeError("no answer within \(timeout)")
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

struct ProbeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
