import Foundation
import ParleyCheck
import ParleyCore
import ServiceLifecycle
import Synchronization

/// Runs `parley check`'s comparison every `interval` and keeps the latest verdict.
final class CheckLoop: Service, Sendable {
    struct Latest: Encodable, Sendable {
        var verdict: String
        var line: String
        var atMs: UInt64
    }

    private let sources: [any RegionDigestSource]
    private let interval: Duration
    private let latestReport = Mutex<Latest?>(nil)

    init(sources: [any RegionDigestSource], interval: Duration) {
        self.sources = sources
        self.interval = interval
    }

    var latest: Latest? { latestReport.withLock { $0 } }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let report = await ConsistencyCheck.run(self.sources)
                let latest = Latest(verdict: report.verdict.rawValue, line: report.line, atMs: WallClock.milliseconds())
                self.latestReport.withLock { $0 = latest }
                try await Task.sleep(for: self.interval)
            }
        }
    }
}
