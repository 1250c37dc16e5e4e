import Foundation
import Logging
import ParleyCore
import ParleyStore

/// Appends synthetic 1:1 messages to a region's log through the same commit
/// as logic's, so a catch-up benchmark does not wait on clients to produce a
/// million events (`parley fill`, ops/bench-catchup).
public enum SyntheticFill {
    /// Commits `events` messages in transactions of `batch`; returns how long it took.
    public static func run(
        postgres: PostgresLocation, region: String, clock: HybridLogicalClock, events: Int, batch: Int, logger: Logger
    ) async throws -> Duration {
        let store = RegionStore(postgres: postgres, origin: region, clock: clock, logger: logger)
        return try await withThrowingTaskGroup(of: Duration?.self) { group in
            group.addTask {
                await store.run()
                return nil
            }
            group.addTask {
                try await store.prepare()
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
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let elapsed = result { return elapsed }
            }
            throw CancellationError()
        }
    }
}
