import ParleyClient
import ParleyProto

/// Collects a client's events so a script can wait for the ones it expects.
public actor Inbox {
    public private(set) var received: [ReceivedEvent] = []
    private var waiters: [(id: Int, predicate: @Sendable ([ReceivedEvent]) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = []
    private var nextWaiter = 0

    public init() {}

    /// Reads the client's event stream into this inbox until the stream ends.
    public func collect(from client: ParleyClient) async {
        for await event in client.events { append(event) }
    }

    private func append(_ event: ReceivedEvent) {
        received.append(event)
        let snapshot = received
        waiters.removeAll { waiter in
            guard waiter.predicate(snapshot) else { return false }
            waiter.continuation.resume(returning: true)
            return true
        }
    }

    /// Waits until the received events satisfy `predicate`, or the timeout passes.
    public func wait(timeout: Duration = .seconds(10), until predicate: @escaping @Sendable ([ReceivedEvent]) -> Bool) async -> Bool {
        if predicate(received) { return true }
        let id = nextWaiter
        nextWaiter += 1
        return await withCheckedContinuation { continuation in
            waiters.append((id, predicate, continuation))
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(returning: false)
    }

    /// Bodies of the messages received, in arrival order.
    public var messageBodies: [String] {
        received.compactMap { event in
            if case .messagePosted(let posted) = event.event.kind { return posted.body }
            return nil
        }
    }
}

extension Array where Element == ReceivedEvent {
    public func containsMessage(_ body: String) -> Bool {
        contains { event in
            if case .messagePosted(let posted) = event.event.kind { return posted.body == body }
            return false
        }
    }
}
