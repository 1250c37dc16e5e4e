import GRPCCore
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
    let instances: [String]
    let pool: RPCClientPool
    let timeout: Duration

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

    func forward(_ call: Parley_ClientCall) async throws -> Parley_Frame {
        let home = Self.home(of: call.userID, among: instances.count)
        do {
            return try await forward(call, to: instances[home])
        } catch let error as RPCError where error.code == .unavailable {
            // Unavailable means the request never reached the instance, so a
            // retry elsewhere cannot apply it twice (and sends are idempotent anyway).
            guard let next = Self.fallback(from: home, among: instances.count) else { throw error }
            return try await forward(call, to: instances[next])
        }
    }

    private func forward(_ call: Parley_ClientCall, to address: String) async throws -> Parley_Frame {
        let client = Parley_Logic.Client(wrapping: try pool.client(for: address))
        return try await client.handle(call, options: .failFast(timeout: timeout))
    }
}
