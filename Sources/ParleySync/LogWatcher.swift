import Logging
import ParleyCore
import ParleyStore
import ServiceLifecycle
import Synchronization

/// Watches this region's applied vector (every origin's log head) and wakes
/// the pull streams when it moves. One poll for the whole process, whatever
/// the number of peers.
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

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                publish(try await store.appliedVector())
            } catch {
                logger.warning("cannot read the applied vector", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
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
