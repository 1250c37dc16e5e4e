import ArgumentParser
import Foundation
import ParleyCore
import ParleyStore
import PostgresNIO

/// Writes synthetic messages straight into a region's log, as its logic
/// would, so a catch-up benchmark does not wait on clients to produce a
/// million events (ops/bench-catchup).
struct FillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill", abstract: "Append N synthetic 1:1 messages to this region's log (benchmarks)."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Messages to append.") var events = 100_000
    @Option(help: "Messages per transaction.") var batch = 1_000

    func run() async throws {
        let (region, _) = try deployment.load()
        let logger = deployment.logger("parley.fill")
        let postgres = PostgresClient(configuration: deployment.postgres(of: region), backgroundLogger: logger)
        let store = RegionStore(client: postgres, origin: region.name, clock: deployment.clock, logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await postgres.run() }
            try await store.prepare()
            let (sender, recipient) = ("fill.\(region.name).a", "fill.\(region.name).b")
            _ = try await store.commit([.register(userID: sender), .register(userID: recipient)])
            let started = ContinuousClock.now
            var written = 0
            while written < events {
                let count = min(batch, events - written)
                let commands: [StoreCommand] = (0..<count).map { index in
                    .post(Post(
                        sender: sender, senderDevice: "fill", clientMsgID: "fill-\(UUID().uuidString)",
                        target: .user(recipient), body: "synthetic message \(written + index)"
                    ))
                }
                _ = try await store.commit(commands)
                written += count
            }
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            print("appended \(written) messages to \(region.name) in \(String(format: "%.1f", seconds)) s (\(Int(Double(written) / seconds))/s)")
            group.cancelAll()
        }
    }
}
