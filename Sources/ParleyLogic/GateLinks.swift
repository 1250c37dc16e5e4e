import ParleyCore
import ParleyProto
import Synchronization

/// The gates linked to this logic instance, by node id: where pushes go.
final class GateLinks: Sendable {
    typealias Output = BatchQueue<Parley_LogicDown>

    private struct Link {
        let id: UInt64
        let output: Output
    }

    private struct State {
        var byNode: [String: Link] = [:]
        var nextID: UInt64 = 1
    }

    private let state = Mutex(State())

    /// Registers a gate's link; a newer link from the same node replaces the older one.
    func add(node: String, output: Output) -> UInt64 {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.byNode[node] = Link(id: id, output: output)
            return id
        }
    }

    func remove(node: String, id: UInt64) {
        state.withLock { state in
            if state.byNode[node]?.id == id { state.byNode[node] = nil }
        }
    }

    /// Queues deliveries on the node's link; false when that gate is not linked here.
    @discardableResult
    func deliver(_ deliveries: [Parley_Delivery], to node: String) -> Bool {
        guard let output = state.withLock({ $0.byNode[node]?.output }) else { return false }
        for delivery in deliveries { output.push(.with { $0.delivery = delivery }) }
        return true
    }
}
