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
        var waiters: [CheckedContinuation<Void, Never>] = []
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

    /// Returns once the applied vector has something `sent` does not.
    func wait(beyond sent: VersionVector) async {
        await withCheckedContinuation { waiter in
            let ready = state.withLock { state -> Bool in
                if !sent.dominates(state.vector) { return true }
                state.waiters.append(waiter)
                return false
            }
            if ready { waiter.resume() }
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
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
