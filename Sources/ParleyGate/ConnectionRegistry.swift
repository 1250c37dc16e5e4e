import ParleyCore
import Synchronization

/// The gate's connections: all of them (for idle sweeping) and the
/// authenticated ones by device (for pushes).
final class ConnectionRegistry: Sendable {
    private struct State {
        var all: [UInt64: GateConnection] = [:]
        var byDevice: [GateConnection.Identity: GateConnection] = [:]
        var nextID: UInt64 = 1
        var draining = false
    }

    private let state = Mutex(State())

    /// A new connection; once the gate is draining it is born closed.
    func open(now: UInt64) -> GateConnection {
        let (connection, draining) = state.withLock { state in
            let connection = GateConnection(id: state.nextID, now: now)
            state.nextID += 1
            state.all[connection.id] = connection
            return (connection, state.draining)
        }
        if draining { connection.close(with: Self.goingAway) }
        return connection
    }

    /// The gate is stopping: every device is told to reconnect (to another
    /// gate) and no new connection is kept.
    func drain() {
        let connections = state.withLock { state in
            state.draining = true
            return Array(state.all.values)
        }
        for connection in connections { connection.close(with: Self.goingAway) }
    }

    private static let goingAway = ClientError(.goingAway, "this gate is shutting down; reconnect")

    /// Binds a connection to its device. A device that connects again replaces
    /// its older connection, which is returned so the caller can close it.
    func bind(_ connection: GateConnection, to identity: GateConnection.Identity) -> GateConnection? {
        connection.authenticated(as: identity)
        return state.withLock { state in
            let previous = state.byDevice[identity]
            state.byDevice[identity] = connection
            return previous === connection ? nil : previous
        }
    }

    /// Forgets a connection; true if it still owned its device.
    @discardableResult
    func remove(_ connection: GateConnection) -> Bool {
        state.withLock { state in
            state.all[connection.id] = nil
            guard let identity = connection.identity, state.byDevice[identity] === connection else { return false }
            state.byDevice[identity] = nil
            return true
        }
    }

    func connection(for identity: GateConnection.Identity) -> GateConnection? {
        state.withLock { $0.byDevice[identity] }
    }

    /// Connections silent for longer than `limit` milliseconds.
    func silent(now: UInt64, limit: UInt64) -> [GateConnection] {
        state.withLock { state in state.all.values.filter { $0.silentFor(now: now) > limit } }
    }
}
