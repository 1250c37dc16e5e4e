import Synchronization

/// Which peers this region currently pulls from directly, and from that,
/// which origins to ask each peer for: its own, plus every other origin
/// whose direct link is down (so a third region relays it). Each event then
/// reaches the region once instead of once per peer.
final class DirectLinks: Sendable {
    private struct State {
        var up: Set<String> = []
        var version = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Every other region of the cluster.
    let origins: Set<String>
    private let state = Mutex(State())

    init(origins: some Sequence<String>) {
        self.origins = Set(origins)
    }

    func set(_ peer: String, up: Bool) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let changed = up ? state.up.insert(peer).inserted : state.up.remove(peer) != nil
            guard changed else { return [] }
            state.version += 1
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// What to ask `peer` for now.
    func wanted(from peer: String) -> Set<String> {
        state.withLock { state in origins.filter { $0 == peer || !state.up.contains($0) } }.union([peer])
    }

    /// Returns once what to ask `peer` for differs from `current`.
    func waitForChange(from peer: String, current: Set<String>) async {
        while wanted(from: peer) == current, !Task.isCancelled {
            let version = state.withLock { $0.version }
            await withTaskCancellationHandler {
                await withCheckedContinuation { waiter in
                    let stale = state.withLock { state -> Bool in
                        // Checked under the lock the cancellation handler takes: no lost wake-up.
                        guard state.version == version, !Task.isCancelled else { return true }
                        state.waiters.append(waiter)
                        return false
                    }
                    if stale { waiter.resume() }
                }
            } onCancel: {
                // Wake everyone; the others find nothing changed and wait again.
                let waiters = state.withLock { state in
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
        }
    }
}
