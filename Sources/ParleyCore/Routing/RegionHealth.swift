/// Whether a region takes clients, decided from its health probes with
/// hysteresis (docs/OPERATIONS.md, "Health and failover control"): declared down after `downAfter` failures in a
/// row and up again after `upAfter` successes in a row, so one lost probe
/// changes nothing and a flapping region does not flap its clients.
public struct RegionHealth: Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case up, down
    }

    public private(set) var state: State
    public private(set) var failuresInARow = 0
    public private(set) var successesInARow = 0
    let downAfter: Int
    let upAfter: Int

    /// A region starts up: it is declared down only by failing its probes.
    public init(downAfter: Int, upAfter: Int, state: State = .up) {
        precondition(downAfter > 0 && upAfter > 0)
        self.downAfter = downAfter
        self.upAfter = upAfter
        self.state = state
    }

    /// Records one probe; returns the new state when this probe changed it.
    @discardableResult
    public mutating func record(success: Bool) -> State? {
        if success {
            successesInARow += 1
            failuresInARow = 0
            if state == .down, successesInARow >= upAfter {
                state = .up
                return .up
            }
        } else {
            failuresInARow += 1
            successesInARow = 0
            if state == .up, failuresInARow >= downAfter {
                state = .down
                return .down
            }
        }
        return nil
    }
}
