import ArgumentParser
import Foundation
import ParleyLogic

/// `parley fill`: wires `SyntheticFill` to a region of the deployment.
struct FillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill", abstract: "Append N synthetic 1:1 messages to this region's log, or make one large group (benchmarks)."
    )

    @OptionGroup var deployment: DeploymentOptions

    @Option(help: "Messages to append.") var events = 100_000
    @Option(help: "Messages per transaction.") var batch = 1_000
    @Option(help: "Instead of messages: register this many synthetic users and make one group of them all.") var groupMembers: Int?

    func run() async throws {
        let (region, _) = try deployment.load()
        if let groupMembers {
            let elapsed = try await SyntheticFill.bigGroup(
                postgres: try deployment.postgres(of: region), region: region.name, clock: deployment.clock, members: groupMembers,
                logger: deployment.logger("parley.fill")
            )
            print("made group \(SyntheticFill.bigGroupID(region: region.name)) of \(groupMembers) members in \(String(format: "%.1f", elapsed / .seconds(1))) s")
            return
        }
        let elapsed = try await SyntheticFill.run(
            postgres: try deployment.postgres(of: region), region: region.name, clock: deployment.clock,
            events: events, batch: batch, logger: deployment.logger("parley.fill")
        )
        let seconds = elapsed / .seconds(1)
        print("appended \(events) messages to \(region.name) in \(String(format: "%.1f", seconds)) s (\(Int(Double(events) / seconds))/s)")
    }
}
