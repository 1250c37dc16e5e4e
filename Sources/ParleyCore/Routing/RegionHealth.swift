/// Whether a region takes clients, decided from its health probes with
/// hysteresis (docs/OPERATIONS.md, "Health and failover control"): declared down after `downAfter` failures in a
/// row and up again after `upAfter` successes in a row, so one lost probe
/// changes nothing and a flapping region does not flap its clients.
///
/// A slow probe is neither: the region's gate accepted the connection but
/// answered late, which is what a gate absorbing a reconnect storm does.
/// Declaring such a region down would push its storm onto the next region
/// and evict the devices it already holds, so slow probes declare a region
/// down only once nothing but slow or failed probes came for `slowDownAfter`
/// probes in a row: a gate that is busy gets time, a gate that hangs does not.
public struct RegionHealth: Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case up, down
    }

    /// What one probe of the region found.
    public enum Probe: String, Sendable {
        case ok
        /// Reached, but answered after the probe timeout.
        case slow
        case failed
    }

    public private(set) var state: State
    public private(set) var failuresInARow = 0
    public private(set) var successesInARow = 0
    /// Probes in a row that were not ok, slow ones included.
    public private(set) var troubledInARow = 0
    let downAfter: Int
    let upAfter: Int
    let slowDownAfter: Int

    /// A region starts up: it is declared down only by failing its probes.
    public init(downAfter: Int, upAfter: Int, slowDownAfter: Int = 12, state: State = .up) {
        precondition(downAfter > 0 && upAfter > 0 && slowDownAfter >= downAfter)
        self.downAfter = downAfter
        self.upAfter = upAfter
        self.slowDownAfter = slowDownAfter
        self.state = state
    }

    /// Records one probe; returns the new state when this probe changed it.
    @discardableResult
    public mutating func record(success: Bool) -> State? {
        record(success ? .ok : .failed)
    }

    /// Records one probe; returns the new state when this probe changed it.
    @discardableResult
    public mutating func record(_ probe: Probe) -> State? {
        switch probe {
        case .ok:
            successesInARow += 1
            failuresInARow = 0
            troubledInARow = 0
            if state == .down, successesInARow >= upAfter {
                state = .up
                return .up
            }
        case .slow, .failed:
            if probe == .failed { failuresInARow += 1 }
            troubledInARow += 1
            successesInARow = 0
            if state == .up, failuresInARow >= downAfter || troubledInARow >= slowDownAfter {
                state = .down
                return .down
            }
        }
        return nil
    }
}
