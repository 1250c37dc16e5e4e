import Foundation

/// What `parley drill` found: printed for a human, or as JSON with `--json`
/// (docs/OPERATIONS.md, "Reading a drill report").
public struct DrillReport: Codable, Sendable {
    public struct Percentiles: Codable, Sendable {
        public var count: Int
        public var p50: Double?
        public var p99: Double?
        public var max: Double?

        init(_ values: [Double]) {
            let sorted = values.sorted()
            count = sorted.count
            func at(_ fraction: Double) -> Double? {
                sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
            }
            p50 = at(0.5)
            p99 = at(0.99)
            max = sorted.last
        }
    }

    public var scenario: String
    public var region: String
    public var durability: String
    public var clients: Int
    /// Whether the region's PostgreSQL was a Patroni pair.
    public var highlyAvailable: Bool
    /// What route had to come to say of the region; nil: that it stays up.
    public var expectedRouteState: String?
    /// Fault → route declares the region down (or draining), in seconds.
    public var detectionSeconds: Double?
    /// When the region had to stay up: whether route said "up" all through the outage.
    public var stayedUp: Bool?
    /// When the fault had to leave every client connected (a failover inside
    /// the region): connections its clients lost after the fault. Must be 0.
    public var connectionsLost: Int?
    /// How long healing took (restarting the region, recovering its Postgres).
    public var healSeconds: Double
    /// Clients connected to the region at the fault, and how many were back elsewhere.
    public var clientsAffected: Int
    public var clientsRecovered: Int
    /// Connections lost and recovered before the fault (a client that heard
    /// nothing for its liveness timeout moves on): each moved a client.
    public var reconnectsBeforeFault: Int
    /// Fault → the client signed in elsewhere and re-synced, in seconds.
    public var recovery: Percentiles
    public var acked: Int
    public var sendErrors: Int
    /// Acknowledged messages their recipient never received.
    public var ackedLost: Int
    /// Acknowledged events of the killed region no other region held while it
    /// was down (with `local` durability), and how many reappeared after the heal.
    public var atRisk: Int
    public var atRiskReappeared: Int
    /// Messages a client showed twice: must be 0.
    public var duplicatesShown: Int
    /// Sends stored twice (accepted in two regions during the failover): the
    /// regions hide one, the SDK flags it and the client shows it once.
    public var storedTwice: Int
    /// The region running again → the checker proves every region consistent at the same vector, in seconds.
    public var convergenceSeconds: Double?
    public var checkVerdict: String
    /// The last check's verdict, largest lag and every region's applied vector.
    public var checkSummary: String

    /// What makes the drill fail; empty when it passed.
    public var failures: [String] {
        var failures: [String] = []
        if clientsRecovered < clientsAffected { failures.append("\(clientsAffected - clientsRecovered) clients never recovered") }
        if detectionSeconds == nil, let state = expectedRouteState {
            failures.append("route never declared \(region) \(state)")
        }
        if stayedUp == false { failures.append("route did not say \(region) up all through the fault") }
        if let lost = connectionsLost, lost > 0 { failures.append("\(lost) client connections lost") }
        if ackedLost > 0 { failures.append("\(ackedLost) acknowledged messages lost") }
        if durability == "geo", atRisk > 0 { failures.append("\(atRisk) events acknowledged with geo durability were held by \(region) alone") }
        if atRiskReappeared < atRisk { failures.append("\(atRisk - atRiskReappeared) at-risk events never reappeared") }
        if duplicatesShown > 0 { failures.append("\(duplicatesShown) duplicates shown") }
        if convergenceSeconds == nil { failures.append("no convergence (checker: \(checkVerdict))") }
        return failures
    }

    public var passed: Bool { failures.isEmpty }

    /// The speed targets (docs/BENCHMARKS.md) this run missed: reported, not
    /// failed on, since a loaded machine is slower without anything being wrong.
    public var targetsMissed: [String] {
        var missed: [String] = []
        // A drain spreads its clients over the drain window on purpose.
        if scenario != Drill.Scenario.drain.rawValue, let p99 = recovery.p99, p99 > 3 { missed.append("recovery p99 \(p99) s > 3 s") }
        if let convergence = convergenceSeconds, convergence > 10 { missed.append("convergence \(convergence) s > 10 s") }
        return missed
    }

    public var text: String {
        func s(_ value: Double?) -> String { value.map { String(format: "%.3f s", $0) } ?? "-" }
        return """
            drill \(scenario) \(region), \(durability) durability, \(clients) clients\(highlyAvailable ? ", PostgreSQL under Patroni" : "")
            detection        \(detectionLine)
            recovery         \(clientsRecovered)/\(clientsAffected) clients back elsewhere: p50 \(s(recovery.p50))  p99 \(s(recovery.p99))  max \(s(recovery.max)) (\(reconnectsBeforeFault) reconnects before the fault)
            acked            \(acked) messages (\(sendErrors) sends failed, not acknowledged)
            acked lost       \(ackedLost)
            at risk          \(atRisk) acknowledged events held only by \(region) while down; \(atRiskReappeared) reappeared after heal
            duplicates       \(duplicatesShown) shown (\(storedTwice) stored twice, one copy shown: the others came hidden or were replaced)
            heal             \(s(healSeconds)) to bring \(region) back
            convergence      \(s(convergenceSeconds)) after heal (checker: \(checkSummary))
            targets          \(targetsMissed.isEmpty ? "met (recovery p99 ≤ 3 s, convergence ≤ 10 s)" : "missed: " + targetsMissed.joined(separator: "; "))
            result           \(passed ? "PASSED" : "FAILED: " + failures.joined(separator: "; "))
            """
    }

    private var detectionLine: String {
        if let state = expectedRouteState {
            return "\(detectionSeconds.map { String(format: "%.3f s", $0) } ?? "-") (route declared \(region) \(state))"
        }
        let connections = connectionsLost.map { ", \($0) client connections lost" } ?? ""
        return "\(region) stays up: \(stayedUp == true ? "route said up all along" : "route did NOT say up all along")\(connections)"
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
