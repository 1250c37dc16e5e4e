import ParleyCore
import ServiceLifecycle

/// Closes connections that have sent nothing (not even a heartbeat) for
/// longer than the idle timeout, and connections that have not signed in
/// within the sign-in deadline (so sockets that never authenticate cannot
/// pile up on a gate); tells a connection whose token expired to present a
/// fresh one, and closes it when it has not within `reauthGraceMilliseconds`.
/// One timer for the whole gate, not one per connection.
struct IdleSweeper: Service {
    let registry: ConnectionRegistry
    let idleTimeoutMilliseconds: UInt64
    let authTimeoutMilliseconds: UInt64
    let reauthGraceMilliseconds: UInt64

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
            for connection in registry.authenticated() {
                switch connection.tokenDue(now: now, grace: reauthGraceMilliseconds) {
                case .none: break
                case .reauth(let deadline): connection.send(.with { $0.reauthRequired = .with { $0.deadlineMs = deadline } })
                case .expired: connection.close(with: ClientError(.tokenExpired, "the token expired and no fresh one came"))
                }
            }
        }
    }
}
