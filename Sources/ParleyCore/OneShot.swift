import Synchronization

/// A result that arrives once and is awaited by any number of tasks: what a
/// caller holds between handing work over (in order, at once) and its answer.
public final class OneShot<Value: Sendable>: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Value, any Error>])
        case done(Result<Value, any Error>)
    }

    private let state = Mutex(State.waiting([]))

    public init() {}

    /// Delivers the result; only the first call counts.
    public func resolve(_ result: Result<Value, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            guard case .waiting(let waiters) = state else { return [] }
            state = .done(result)
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    public func value() async throws -> Value {
        try await withCheckedThrowingContinuation { waiter in
            let done = state.withLock { state -> Result<Value, any Error>? in
                switch state {
                case .waiting(let waiters):
                    state = .waiting(waiters + [waiter])
                    return nil
                case .done(let result):
                    return result
                }
            }
            if let done { waiter.resume(with: done) }
        }
    }
}
