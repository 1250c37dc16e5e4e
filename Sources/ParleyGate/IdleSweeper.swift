import ParleyCore
import ServiceLifecycle

/// Closes connections that have sent nothing (not even a heartbeat) for
/// longer than the idle timeout, and connections that have not signed in
/// within the sign-in deadline (so sockets that never authenticate cannot
/// pile up on a gate). One timer for the whole gate, not one per connection.
struct IdleSweeper: Service {
    let registry: ConnectionRegistry
    let idleTimeoutMilliseconds: UInt64
    let authTimeoutMilliseconds: UInt64

    func run() async throws {
        let shortest = min(idleTimeoutMilliseconds, authTimeoutMilliseconds)
        let period = Duration.milliseconds(Int64(max(100, min(1_000, shortest / 4))))
        while !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period) }
            let now = WallClock.milliseconds()
            for connection in registry.unauthenticated(now: now, limit: authTimeoutMilliseconds) {
                connection.close(with: ClientError(.authTimeout, "no valid auth within \(authTimeoutMilliseconds) ms"))
            }
            for connection in registry.silent(now: now, limit: idleTimeoutMilliseconds) {
                connection.close(with: ClientError(.idleTimeout, "no frame for \(idleTimeoutMilliseconds) ms"))
            }
        }
    }
}
