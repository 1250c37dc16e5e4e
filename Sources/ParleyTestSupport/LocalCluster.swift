import Foundation
import ParleyCore

/// Several regions really running, replicating through their `parley sync`:
/// each with its own Postgres, Redis, logic instances and gate, all sharing
/// one regions folder and one token secret.
public final class LocalCluster: Sendable {
    public let regions: [LocalRegion]

    public subscript(name: String) -> LocalRegion { regions.first { $0.name == name }! }

    /// Starts the regions, runs `body`, and stops everything even if `body` throws.
    public static func with<T: Sendable>(
        _ names: [String] = ["eu", "us", "ap"], logicArguments: [String: [String]] = [:], syncArguments: [String: [String]] = [:],
        _ body: (LocalCluster) async throws -> T
    ) async throws -> T {
        let directory = try TestRun.scratch("cluster")
        let secret = "test-secret-\(UUID().uuidString)"
        try JSONEncoder().encode(ClusterFile(regions: names, tokenSecret: secret))
            .write(to: URL(fileURLWithPath: "\(directory)/cluster.json"))
        var started: [LocalRegion] = []
        do {
            for name in names {
                started.append(try await LocalRegion.prepare(
                    name: name, directory: directory, tokenSecret: secret,
                    logicArguments: logicArguments[name] ?? [], syncArguments: syncArguments[name] ?? []
                ))
            }
            for region in started { try await region.launch(withSync: true) }
        } catch {
            await stop(started)
            throw error
        }
        let cluster = LocalCluster(regions: started)
        do {
            let result = try await body(cluster)
            await stop(started)
            return result
        } catch {
            await stop(started)
            throw error
        }
    }

    private static func stop(_ regions: [LocalRegion]) async {
        await withDiscardingTaskGroup { group in
            for region in regions { group.addTask { await region.stop() } }
        }
    }

    private init(regions: [LocalRegion]) { self.regions = regions }

    /// The end of every region's sync log, for failure messages.
    public var syncLogs: String {
        regions.map { "--- \($0.name) sync:\n" + String(($0.sync?.log ?? "not running").suffix(2_000)) }.joined(separator: "\n")
    }
}
