import Logging
import ParleyCore
import ParleyProto
import ParleyRPC
import Synchronization

/// Chooses the logic instance for a user and fails over to another.
///
/// A user's requests go to instance `x = hash(user) % n`, so they are handled
/// in order by one instance. When `x` is unreachable the request goes to
/// `(x + p) % n` with a random `p` in `[1, n)`, so the load of a failed
/// instance spreads over all the others instead of piling onto its neighbour.
/// Changes are the exception: they go straight to the region's writer.
struct LogicRouter: Sendable {
    let links: [LogicLink]
    let logger: Logger
    /// Whether changes went to the writer last time, to log only the switches.
    private let toWriter = Switch()

    private final class Switch: Sendable {
        let state = Mutex<Bool?>(nil)
    }

    init(links: [LogicLink], logger: Logger) {
        self.links = links
        self.logger = logger
    }

    static func home(of userID: String, among count: Int) -> Int {
        // FNV-1a: stable across processes, unlike Hasher.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in userID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(count))
    }

    static func fallback(from home: Int, among count: Int) -> Int? {
        guard count > 1 else { return nil }
        return (home + Int.random(in: 1..<count)) % count
    }

    /// The link a change of `userID` goes up: the region's writer (the first
    /// instance in the region file, docs/ARCHITECTURE.md "One writer per
    /// origin") while its stream is open, so the user's own instance does not
    /// relay it there; else the user's own instance, which commits it or
    /// hands it on.
    func changeLink(for userID: String) -> Int {
        let writerOpen = links[0].isOpen
        let switched = toWriter.state.withLock { last in
            defer { last = writerOpen }
            return last != writerOpen
        }
        if switched {
            if writerOpen {
                logger.info("sending changes to the writer", metadata: ["writer": "\(links[0].address)"])
            } else {
                logger.warning("the writer's link is down; sending changes to each user's own instance", metadata: ["writer": "\(links[0].address)"])
            }
        }
        return writerOpen ? 0 : Self.home(of: userID, among: links.count)
    }

    /// Puts the call on `link` now, so calls sent one after the other reach
    /// logic in that order; `LinkError.down` at once when that link is not up.
    func send(_ call: Parley_ClientCall, on link: Int) throws -> OneShot<Parley_Frame> {
        try links[link].send(call)
    }

    /// A lost link may have lost a call after logic applied it; a retry is
    /// still safe for sends (stored once per client_msg_id), read markers and
    /// sign-ins, which are idempotent. A call that timed out is not retried
    /// here: the device is told, and retries itself.
    func forward(_ call: Parley_ClientCall) async throws -> Parley_Frame {
        let home = Self.home(of: call.userID, among: links.count)
        do {
            return try await links[home].call(call)
        } catch LinkError.down {
            guard let next = Self.fallback(from: home, among: links.count) else { throw LinkError.down(address: links[home].address) }
            return try await links[next].call(call)
        }
    }
}
