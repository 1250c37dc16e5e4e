import Foundation
import Logging
import ParleyCore
import ParleyStore

/// Appends synthetic 1:1 messages to a region's log through the same commit
/// as logic's, so a catch-up benchmark does not wait on clients to produce a
/// million events (`parley fill`, ops/bench-catchup); or a group larger than
/// clients would sign in for (`parley fill --group-members`, ops/bench).
public enum SyntheticFill {
    /// The large group's id and its owner, a member who can page it.
    public static func bigGroupID(region: String) -> String { "fill.\(region).big" }
    public static func bigGroupMember(region: String) -> String { "fill.\(region).m00000" }

    /// Registers `members` synthetic users and creates one group of all of
    /// them, through the planner with its size limit raised to fit; once.
    public static func bigGroup(
        postgres: PostgresLocation, region: String, clock: HybridLogicalClock, members: Int, logger: Logger
    ) async throws -> Duration {
        try await withStore(postgres: postgres, region: region, clock: clock, logger: logger) { store in
            let users = (0..<members).map { "fill.\(region).m\(String(format: "%05d", $0))" }
            let started = ContinuousClock.now
            for start in stride(from: 0, to: users.count, by: 1_000) {
                _ = try await store.commit(users[start..<min(users.count, start + 1_000)].map { .register(userID: $0) })
            }
            let outcome = try await store.commit(
                [.createGroup(owner: users[0], groupID: bigGroupID(region: region), name: "\(members) members", members: users)],
                rules: CommitRules(maxGroupMembers: members)
            )
            if case .rejected(let error) = outcome.first { throw error }
            return ContinuousClock.now - started
        }
    }

    /// Runs `work` with a prepared store of the region.
    private static func withStore(
        postgres: PostgresLocation, region: String, clock: HybridLogicalClock, logger: Logger,
        _ work: @escaping @Sendable (RegionStore) async throws -> Duration
    ) async throws -> Duration {
        let store = RegionStore(postgres: postgres, origin: region, clock: clock, logger: logger)
        return try await withThrowingTaskGroup(of: Duration?.self) { group in
            group.addTask {
                await store.run()
                return nil
            }
            group.addTask {
                try await store.prepare()
                return try await work(store)
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let elapsed = result { return elapsed }
            }
            throw CancellationError()
        }
    }

    /// Commits `events` messages in transactions of `batch`; returns how long it took.
    public static func run(
        postgres: PostgresLocation, region: String, clock: HybridLogicalClock, events: Int, batch: Int, logger: Logger
    ) async throws -> Duration {
        try await withStore(postgres: postgres, region: region, clock: clock, logger: logger) { store in
            let (sender, recipient) = ("fill.\(region).a", "fill.\(region).b")
            _ = try await store.commit([.register(userID: sender), .register(userID: recipient)])
            let started = ContinuousClock.now
            var written = 0
            while written < events {
                let count = min(batch, events - written)
                let commands: [Command] = (0..<count).map { index in
                    .post(Post(
                        sender: sender, senderDevice: "fill", clientMsgID: "fill-\(UUID().uuidString)",
                        target: .user(recipient), body: "synthetic message \(written + index)"
                    ))
                }
                _ = try await store.commit(commands)
                written += count
            }
            return ContinuousClock.now - started
        }
    }
}
