import ParleyCore
import ParleyProto
import ParleyRPC

/// Chooses the logic instance for a user and fails over to another.
///
/// A user's requests go to instance `x = hash(user) % n`, so they are handled
/// in order by one instance. When `x` is unreachable the request goes to
/// `(x + p) % n` with a random `p` in `[1, n)`, so the load of a failed
/// instance spreads over all the others instead of piling onto its neighbour.
struct LogicRouter: Sendable {
    let links: [LogicLink]

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

    /// Puts the call on the link to the user's own instance now, so calls
    /// sent one after the other reach logic in that order; `LinkError.down` at
    /// once when that link is not up.
    func sendHome(_ call: Parley_ClientCall) throws -> OneShot<Parley_Frame> {
        try links[Self.home(of: call.userID, among: links.count)].send(call)
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
