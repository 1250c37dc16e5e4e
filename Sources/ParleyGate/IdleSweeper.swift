import ParleyCore
import ServiceLifecycle

/// Closes connections that have sent nothing (not even a heartbeat) for
/// longer than the idle timeout. One timer for the whole gate, not one per
/// connection.
struct IdleSweeper: Service {
    let registry: ConnectionRegistry
    let idleTimeoutMilliseconds: UInt64

    func run() async throws {
        let period = Duration.milliseconds(Int64(max(100, min(1_000, idleTimeoutMilliseconds / 4))))
        while !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period) }
            for connection in registry.silent(now: WallClock.milliseconds(), limit: idleTimeoutMilliseconds) {
                connection.close(with: ClientError(.idleTimeout, "no frame for \(idleTimeoutMilliseconds) ms"))
            }
        }
    }
}
