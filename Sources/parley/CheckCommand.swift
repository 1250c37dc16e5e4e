import ArgumentParser
import Foundation
import ParleyCheck
import ParleyCore
import ParleyTools

/// `parley check`: proves the regions agree, or names where they do not.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check that the regions agree: logs at the minimum of their applied vectors, and each conversation's state.",
        discussion: """
            Reads every region's sync (the syncStatus address in its region file, or --address), \
            compares the logs at the component-wise minimum of the applied vectors while writes \
            continue, compares each conversation whose events are applied alike everywhere, and \
            descends to the first differing event and the differing rows.

            Exit codes: 0 consistent; 1 divergent (the report names each difference); \
            2 a region unreachable, or bad usage.
            """
    )

    @Option(help: "Folder holding cluster.json and the region files.")
    var regions = "regions"

    @Option(help: ArgumentHelp("A region's sync status address, instead of its region file's (repeatable).", valueName: "region=host:port"))
    var address: [String] = []

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: ArgumentHelp("Check every N seconds, one line per check, until interrupted.", valueName: "seconds"))
    var watch: Double?

    func validate() throws {
        if let watch, watch <= 0 { throw ValidationError("--watch wants a positive number of seconds") }
    }

    func run() async throws {
        let sources: [any RegionDigestSource]
        do { sources = try regionSources() } catch {
            FileHandle.standardError.write(Data("parley check: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let watch {
            while !Task.isCancelled {
                let report = await ConsistencyCheck.run(sources)
                // Written straight to the descriptor: each line shows at once when piped.
                FileHandle.standardOutput.write(Data(((json ? try encoded(report, pretty: false) : report.line) + "\n").utf8))
                try await Task.sleep(for: .milliseconds(Int(watch * 1_000)))
            }
            return
        }
        let report = await ConsistencyCheck.run(sources)
        print(json ? try encoded(report, pretty: true) : report.text)
        if report.verdict != .consistent { throw ExitCode(report.verdict.exitCode) }
    }

    private func regionSources() throws -> [any RegionDigestSource] {
        let options = try DeploymentOptions.parse(["--regions", regions])
        let names = try options.load().cluster.regions
        let token = try options.adminToken
        var overrides: [String: String] = [:]
        for entry in address {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, names.contains(parts[0]) else { throw ValidationError("--address wants REGION=HOST:PORT with a region of the cluster, not \(entry)") }
            overrides[parts[0]] = parts[1]
        }
        return try names.map { name in
            let file = try DeploymentOptions.parse(["--regions", regions, "--region", name]).load().region
            guard let status = overrides[name] ?? file.syncStatus else {
                throw ValidationError("region \(name) has no syncStatus address: set it in \(name).json or pass --address \(name)=HOST:PORT")
            }
            return HTTPRegionDigests(name: name, address: status, adminToken: token)
        }
    }

    private func encoded(_ report: ConsistencyReport, pretty: Bool) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }
}
