import Logging
import ServiceLifecycle

/// Runs `connection` again and again until graceful shutdown: a long-lived
/// stream that ends, for whatever reason, is reopened after an exponential
/// backoff (50 ms doubling to 2 s; reset by a stream that opened and ended
/// cleanly). Only the first failure in a row is logged, so a peer that stays
/// down does not flood the log.
public func reconnecting(
    _ what: @autoclosure () -> String, logger: Logger, connection: () async throws -> Void
) async {
    var failures = 0
    while !Task.isShuttingDownGracefully, !Task.isCancelled {
        do {
            try await connection()
            failures = 0
        } catch {
            failures += 1
            if failures == 1 { logger.warning("\(what()) unreachable", metadata: ["error": "\(error)"]) }
        }
        guard !Task.isShuttingDownGracefully else { break }
        let backoff = Duration.milliseconds(min(2_000, 50 << min(failures, 6)))
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: backoff) }
    }
}
