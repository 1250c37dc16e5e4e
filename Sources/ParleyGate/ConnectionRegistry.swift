import ParleyCore
import Synchronization

/// The gate's connections: all of them (for idle sweeping) and the
/// authenticated ones by device (for pushes).
final class ConnectionRegistry: Sendable {
    private struct State {
        var all: [UInt64: GateConnection] = [:]
        var byDevice: [GateConnection.Identity: GateConnection] = [:]
        var nextID: UInt64 = 1
        /// Open connections per client address, for the per-address cap,
        /// and the address each counted connection is counted against.
        var perAddress: [String: Int] = [:]
        var countedAt: [UInt64: String] = [:]
        /// The gate is shutting down, for good.
        var stopping = false
        /// The region is drained or down, until `undrain`.
        var drained = false
        var refusesNew: Bool { stopping || drained }
    }

    private let state = Mutex(State())
    /// Frames a connection may leave unread before it is evicted.
    let maxOutbox: Int
    /// Connections one client address may hold open (0: no cap).
    let maxPerAddress: Int

    init(maxOutbox: Int = 4_096, maxPerAddress: Int = 0) {
        self.maxOutbox = maxOutbox
        self.maxPerAddress = maxPerAddress
    }

    /// A new connection from `address`; born closed while the gate is
    /// draining, or when that address already holds its cap of connections.
    func open(now: UInt64, address: String?) -> GateConnection {
        let (connection, refusal) = state.withLock { state -> (GateConnection, ClientError?) in
            let connection = GateConnection(id: state.nextID, address: address, now: now, maxOutbox: maxOutbox)
            state.nextID += 1
            state.all[connection.id] = connection
            if state.refusesNew { return (connection, Self.goingAway) }
            if let address {
                let open = state.perAddress[address, default: 0]
                if maxPerAddress > 0, open >= maxPerAddress {
                    return (connection, ClientError(.tooManyConnections, "\(open) connections from this address already; close one first"))
                }
                state.perAddress[address] = open + 1
                state.countedAt[connection.id] = address
            }
            return (connection, nil)
        }
        if let refusal { connection.close(with: refusal) }
        return connection
    }

    /// The gate is stopping: every device is told to reconnect (to another
    /// gate) and no new connection is kept.
    func drain() {
        let connections = state.withLock { state in
            state.stopping = true
            return Array(state.all.values)
        }
        for connection in connections { connection.close(with: Self.goingAway) }
    }

    /// The region is drained or down: new connections are refused and the
    /// connected devices are told to go elsewhere, spread evenly over
    /// `window` so the regions they move to are not stampeded. Returns when
    /// the last was told, or early when `undrain` (or cancellation) stops it.
    func drain(over window: Duration) async {
        let connections = state.withLock { state in
            state.drained = true
            return Array(state.all.values)
        }
        let start = ContinuousClock.now
        for (index, connection) in connections.enumerated() {
            try? await Task.sleep(until: start + window * (Double(index) / Double(connections.count)))
            guard !Task.isCancelled, state.withLock({ $0.drained }) else { return }
            connection.close(with: Self.goingAway)
        }
    }

    /// The region takes clients again.
    func undrain() {
        state.withLock { $0.drained = false }
    }

    private static let goingAway = ClientError(.goingAway, "this gate is going away; reconnect elsewhere")

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
            guard state.all.removeValue(forKey: connection.id) != nil else { return false }
            if let address = state.countedAt.removeValue(forKey: connection.id) {
                let open = state.perAddress[address, default: 1] - 1
                state.perAddress[address] = open > 0 ? open : nil
            }
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

    /// The signed-in connections.
    func authenticated() -> [GateConnection] {
        state.withLock { state in Array(state.byDevice.values) }
    }

    /// Connections open for longer than `limit` milliseconds without signing in.
    func unauthenticated(now: UInt64, limit: UInt64) -> [GateConnection] {
        state.withLock { state in
            state.all.values.filter { $0.identity == nil && now > $0.openedAt && now - $0.openedAt > limit }
        }
    }
}
