import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import Synchronization

/// One committing writer per origin (docs/ARCHITECTURE.md, "One writer per
/// origin"): the first logic instance in the region's list commits every
/// change; each other instance hands its change calls to the first instance
/// ahead of it that it has a link to, and commits them itself only when it
/// has none. Two committers would queue on the origin's row lock, each with
/// half the batch, and halve the region's rate (docs/BENCHMARKS.md).
///
/// Correctness never depends on there being one writer: every commit still
/// takes the origin's row lock, so two instances that both commit (a link
/// lost for a moment) stay dense and ordered, only slower.
///
/// A device's calls commit in the order it sent them: while any of a user's
/// changes is still being committed here, that user's next changes are
/// committed here too rather than handed over, so a handed-over change
/// cannot overtake one queued here.
final class WriterHandoff: Sendable {
    private struct State {
        /// Changes routed `.here` and not committed yet, by user.
        var committingHere: [String: Int] = [:]
        /// Where the last change went: an instance's address, or nil for here.
        var lastTarget: String?? = .none
    }

    /// Links to the instances ahead of this one in the region's list, the
    /// writer first; empty on the writer itself.
    let links: [LogicLink]
    private let logger: Logger
    private let state = Mutex(State())

    init(links: [LogicLink], logger: Logger) {
        self.links = links
        self.logger = logger
    }

    /// Where a change call goes.
    enum Route {
        /// Handed over: the writer's answer arrives here.
        case handedOver(OneShot<Parley_Frame>)
        /// To be committed by this instance; call `committed(userID:)` once it has.
        case here
    }

    /// Hands the call to the writer if a link to an instance ahead is up and
    /// none of the user's changes is still committing here; puts it on that
    /// link now, so calls routed one after the other arrive in that order.
    func route(_ call: Parley_ClientCall) -> Route {
        guard !links.isEmpty else { return .here }
        let (route, target, changed) = state.withLock { state -> (Route, String?, Bool) in
            var chosen: (Route, String?)?
            if state.committingHere[call.userID] == nil {
                for link in links {
                    // Only down an open stream: a change for a writer still
                    // reconnecting commits here rather than fail with the attempt.
                    if let answer = try? link.send(call, onlyIfOpen: true) {
                        chosen = (.handedOver(answer), link.address)
                        break
                    }
                }
            }
            if chosen == nil {
                state.committingHere[call.userID, default: 0] += 1
                chosen = (.here, nil)
            }
            let (route, target) = chosen!
            let changed = state.lastTarget != .some(target)
            state.lastTarget = .some(target)
            return (route, target, changed)
        }
        if changed {
            if let target {
                logger.info("handing changes to the writer", metadata: ["writer": "\(target)"])
            } else {
                logger.warning("no link to an instance ahead; committing changes here")
            }
        }
        return route
    }

    /// One of the user's changes routed `.here` has its outcome.
    func committed(userID: String) {
        guard !links.isEmpty else { return }
        state.withLock { state in
            guard let count = state.committingHere[userID] else { return }
            state.committingHere[userID] = count > 1 ? count - 1 : nil
        }
    }
}
