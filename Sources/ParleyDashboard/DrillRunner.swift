import ParleyDrill
import Synchronization

/// One drill at a time, started from the dashboard on the cluster `ops/up`
/// runs; its progress lines and, once over, its report.
final class DrillRunner: Sendable {
    struct Progress: Encodable, Sendable {
        var running = false
        var scenario: String?
        var region: String?
        var lines: [String] = []
        var report: String?
        var passed: Bool?
    }

    private let cluster: (any DrillCluster)?
    private let progress = Mutex(Progress())

    /// `cluster`: nil when the dashboard runs without ops/up's pid files (no drills).
    init(cluster: (any DrillCluster)?) { self.cluster = cluster }

    var current: Progress { progress.withLock { $0 } }

    enum StartError: Error { case unavailable, alreadyRunning }

    func start(_ scenario: Drill.Scenario, region: String) throws(StartError) {
        guard let cluster else { throw .unavailable }
        let started = progress.withLock { progress in
            guard !progress.running else { return false }
            progress = Progress(running: true, scenario: scenario.rawValue, region: region)
            return true
        }
        guard started else { throw .alreadyRunning }
        Task {
            let drill = Drill(options: Drill.Options(scenario: scenario, region: region), cluster: cluster)
            do {
                let report = try await drill.run { line in self.progress.withLock { $0.lines.append(line) } }
                progress.withLock {
                    $0.report = report.text
                    $0.passed = report.passed
                    $0.running = false
                }
            } catch {
                progress.withLock {
                    $0.report = "the drill could not run: \(error)"
                    $0.passed = false
                    $0.running = false
                }
            }
        }
    }
}
