import ArgumentParser
import Foundation
import ParleyCore
import ParleyDrill
import ParleyProto
import ParleyTools

/// `parley drill`: rehearses a region failure on the cluster `ops/up` runs.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Rehearse a region failure under load from simulated clients, heal it, and report.",
        discussion: """
            Runs against the local cluster ops/up started (pid files in --run). Simulated clients \
            spread over the regions send to each other through `parley route`; the fault hits \
            --region, lasts at least --outage seconds and until every affected client is back \
            elsewhere; then the region is healed and the checker must prove every region \
            converged. See docs/OPERATIONS.md, "Drills".

            Exit codes: 0 passed; 1 failed (the report says why); 2 the drill could not run.
            """
    )

    @Option(help: "What to do to the region: \(Drill.Scenario.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: Drill.Scenario = .killRegion

    @Option(help: "The region the fault hits.")
    var region = "eu"

    @Option(help: "Durability the clients ask for: geo (acknowledged once another region holds it) or local.")
    var durability: DurabilityArgument = .geo

    @Option(help: "Simulated clients, spread over the regions.")
    var clients = 12

    @Option(help: "Messages per second per client.")
    var rate = 2.0

    @Option(help: "Seconds of load before the fault.")
    var loadBefore = 3.0

    @Option(help: "Seconds the fault lasts at least.")
    var outage = 4.0

    @Option(help: "Seconds of load after the heal.")
    var loadAfter = 2.0

    @Option(help: "Folder holding cluster.json and the region files.")
    var regions = "regions"

    @Option(help: "Folder holding ops/up's pid files, one subfolder per region.")
    var run = "run"

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: ArgumentHelp("Also write the report to PATH.txt and PATH.json.", valueName: "path"))
    var save: String?

    @Flag(help: "Print the drill's progress on standard error.")
    var verbose = false

    func validate() throws {
        guard clients >= 2, rate > 0, loadBefore >= 0, outage >= 0, loadAfter >= 0 else {
            throw ValidationError("--clients must be at least 2; --rate positive; durations not negative")
        }
    }

    func run() async throws {
        var options = Drill.Options(scenario: scenario, region: region)
        options.clients = clients
        options.sendsPerSecondPerClient = rate
        options.durability = durability.proto
        options.loadBefore = .milliseconds(Int64(loadBefore * 1_000))
        options.outage = .milliseconds(Int64(outage * 1_000))
        options.loadAfter = .milliseconds(Int64(loadAfter * 1_000))
        let cluster = OpsCluster(regionsDirectory: regions, runDirectory: run, parleyBinary: CommandLine.executablePath)
        let verbose = self.verbose
        let report: DrillReport
        do {
            report = try await Drill(options: options, cluster: cluster).run { line in
                if verbose { FileHandle.standardError.write(Data("drill: \(line)\n".utf8)) }
            }
        } catch {
            FileHandle.standardError.write(Data("parley drill: \(error)\n".utf8))
            throw ExitCode(2)
        }
        print(json ? report.json : report.text)
        if let save {
            try Data((report.text + "\n").utf8).write(to: URL(fileURLWithPath: save + ".txt"))
            try Data((report.json + "\n").utf8).write(to: URL(fileURLWithPath: save + ".json"))
        }
        if !report.passed { throw ExitCode(1) }
    }

    enum DurabilityArgument: String, ExpressibleByArgument {
        case geo, local

        var proto: Parley_Durability { self == .geo ? .geo : .local }
    }
}

extension Drill.Scenario: ExpressibleByArgument {}

extension CommandLine {
    /// This executable, for the processes a drill restarts.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
