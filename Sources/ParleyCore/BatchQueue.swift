import Synchronization

/// A queue whose consumer takes everything waiting at once (group commit,
/// push dispatch, socket writes with one flush per batch): while it works on
/// one batch, producers' items pile up and become the next batch. Batches
/// therefore grow with load and an idle queue adds no delay.
public final class BatchQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    private let maxBatch: Int

    public init(maxBatch: Int) { self.maxBatch = maxBatch }

    /// Adds an item; false once the queue is closed.
    @discardableResult
    public func push(_ item: Element) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.closed else { return (false, nil) }
            state.items.append(item)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// Adds an item unless `limit` items already wait: false when full (the
    /// item is not added) or closed.
    public func push(_ item: Element, ifFewerThan limit: Int) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.closed, state.items.count < limit else { return (false, nil) }
            state.items.append(item)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// Drops what is queued, queues `last` alone and closes: the consumer's
    /// next batch is `last`, then nil. False (and nothing changes) when the
    /// queue was already closed.
    @discardableResult
    public func replaceAndClose(with last: Element) -> Bool {
        let (replaced, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.closed else { return (false, nil) }
            state.items = [last]
            state.closed = true
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return replaced
    }

    /// Refuses new items; `next()` still drains what is queued, then returns nil.
    public func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Up to `maxBatch` queued items, waiting for at least one; nil once closed and drained.
    /// One consumer at a time.
    public func next() async -> [Element]? {
        while true {
            let taken = state.withLock { state -> [Element]? in
                let count = min(maxBatch, state.items.count)
                if count == 0 { return state.closed ? nil : [] }
                defer { state.items.removeFirst(count) }
                return Array(state.items.prefix(count))
            }
            guard let taken else { return nil }
            if !taken.isEmpty { return taken }
            await withCheckedContinuation { waiter in
                let ready = state.withLock { state -> Bool in
                    if !state.items.isEmpty || state.closed { return true }
                    state.waiter = waiter
                    return false
                }
                if ready { waiter.resume() }
            }
        }
    }
}
