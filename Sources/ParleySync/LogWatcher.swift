import Logging
import ParleyCore
import ParleyRPC
import ParleyStore
import ServiceLifecycle
import Synchronization

/// Watches this region's applied vector (every origin's log head) and wakes
/// the pull streams when it moves. Every commit notifies `parley_log`; the
/// watcher then reads the vector once (notifications arriving meanwhile are
/// merged into one more read), with a slow poll as a safety net. One watcher
/// per process, whatever the number of peers.
final class LogWatcher: Service, Sendable {
    private struct State {
        var vector = VersionVector()
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let store: RegionStore
    private let interval: Duration
    private let logger: Logger
    private let state = Mutex(State())

    init(store: RegionStore, interval: Duration, logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    var current: VersionVector { state.withLock { $0.vector } }

    /// Returns once the applied vector has something `sent` does not, or
    /// when the calling task is cancelled (a peer that went away).
    func wait(beyond sent: VersionVector) async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { waiter in
                let ready = state.withLock { state -> Bool in
                    if !sent.dominates(state.vector) || Task.isCancelled { return true }
                    state.waiters[id] = waiter
                    return false
                }
                if ready { waiter.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// As `wait(beyond:)`, for at most `timeout`: false when it passed first.
    func wait(beyond sent: VersionVector, atMost timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.wait(beyond: sent)
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    func run() async throws {
        let (kicks, kick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let store = self.store
        let logger = self.logger
        let interval = self.interval
        await withDiscardingTaskGroup { group in
            group.addTask {
                await reconnecting("log notifications", logger: logger) {
                    try await store.listenForLogChanges { kick.yield() }
                }
            }
            group.addTask {
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    kick.yield()
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                }
                kick.finish()
            }
            for await _ in kicks {
                do {
                    publish(try await store.appliedVector())
                } catch {
                    logger.warning("cannot read the applied vector", metadata: ["error": "\(error)"])
                }
            }
            group.cancelAll()
        }
        publish(current)
    }

    private func publish(_ vector: VersionVector) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard vector != state.vector || Task.isShuttingDownGracefully else { return [] }
            state.vector = vector
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}
