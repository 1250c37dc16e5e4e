import Logging
import ParleyCore
import ServiceLifecycle

/// Runs `connection` again and again until graceful shutdown: a long-lived
/// stream that ends, for whatever reason, is reopened after an exponential
/// backoff (`Backoff.internalLink`; reset by a stream that ended cleanly or
/// lived a while). Only the first failure in a row is logged, so a peer that
/// stays down does not flood the log, while a stream that had been up for a
/// while and broke is logged again.
public func reconnecting(
    _ what: @autoclosure () -> String, logger: Logger, connection: () async throws -> Void
) async {
    var failures = 0
    while !Task.isShuttingDownGracefully, !Task.isCancelled {
        let started = ContinuousClock.now
        do {
            try await connection()
            failures = 0
        } catch {
            if ContinuousClock.now - started > .seconds(5) { failures = 0 }
            failures += 1
            if failures == 1 { logger.warning("\(what()) unreachable", metadata: ["error": "\(error)"]) }
        }
        guard !Task.isShuttingDownGracefully else { break }
        let wait = Backoff.internalLink.delay(afterFailures: failures)
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
    }
}
