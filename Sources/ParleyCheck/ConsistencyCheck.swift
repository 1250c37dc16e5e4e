import ParleyCore

/// One region as the checker sees it: its answers about its digests (over
/// HTTP in `parley check`; any source in tests of the logic).
public protocol RegionDigestSource: Sendable {
    var name: String { get }
    func status() async throws -> ReplicationStatus
    func integrity() async throws -> [String: LogIntegrity]
    func logDigests(at vector: VersionVector) async throws -> [String: LogDigest]
    func logBuckets(origin: String, through: UInt64) async throws -> [DigestBucket]
    func events(origin: String, bucket: Int64, through: UInt64) async throws -> [EventSummary]
    func conversationBuckets() async throws -> [DigestBucket]
    func conversations(bucket: Int64) async throws -> [ConversationDigest]
    func stateRows(conversation: String) async throws -> [StateRow]
}

/// What `parley check` found (docs/OPERATIONS.md, "Checking that regions agree"). Its exit code: 0 consistent,
/// 1 divergent, 2 a region unreachable.
public struct ConsistencyReport: Codable, Sendable {
    public enum Verdict: String, Codable, Sendable {
        case consistent, divergent, unreachable

        public var exitCode: Int32 {
            switch self {
            case .consistent: 0
            case .divergent: 1
            case .unreachable: 2
            }
        }
    }

    /// How far `region` is behind `peer`: events `peer` has applied that
    /// `region` has not (from the two vectors), and for how long, as `region` measures it.
    public struct Lag: Codable, Sendable, Equatable {
        public var region: String
        public var peer: String
        public var connected: Bool
        public var events: UInt64
        public var seconds: Double
    }

    /// One disagreement, with each region's version ("missing" where it has none).
    public struct Difference: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// The log differs at the compared vector.
            case log
            /// A region stores more or fewer events than its applied vector says.
            case integrity
            /// Regions applied the same events to a conversation but hold different state.
            case state
            /// A region's own log went backwards: a peer holds more of its
            /// origin than it does (it is, or is about to be, fenced).
            case backwards
        }

        public var kind: Kind
        public var summary: String
        public var origin: String?
        public var seq: Int64?
        public var conversation: String?
        public var versions: [String: String]
    }

    public var verdict: Verdict
    /// Each region's applied vector, as `origin:seq,…`.
    public var applied: [String: String]
    /// Where the logs were compared: the component-wise minimum.
    public var comparedAt: String
    public var lag: [Lag]
    public var unreachable: [String: String]
    public var differences: [Difference]
    public var conversationsCompared: Int
    /// Conversations with events not yet applied everywhere: judged by their log until then.
    public var conversationsDeferred: Int
}

/// Compares regions' digests at the minimum of their applied vectors and
/// descends to the first differing event and the differing rows.
public enum ConsistencyCheck {
    public static func run(_ regions: [any RegionDigestSource]) async -> ConsistencyReport {
        var report = ConsistencyReport(
            verdict: .consistent, applied: [:], comparedAt: "", lag: [], unreachable: [:], differences: [],
            conversationsCompared: 0, conversationsDeferred: 0
        )
        let statuses = await collect(regions) { try await $0.status() }
        let vectors = statuses.compactMapValues { try? $0.get() }.mapValues { VersionVector($0.applied) }
        for region in regions {
            switch statuses[region.name] {
            case .success(let status)?:
                report.applied[region.name] = VersionVector(status.applied).compact
                // Events behind each peer from the vectors themselves (a region cut off from a
                // peer cannot know); seconds as the region measures them.
                for (peer, lag) in status.peers.sorted(by: { $0.key < $1.key }) {
                    let behind = vectors[peer].map { vectors[region.name]?.eventsBehind($0, excluding: region.name) ?? 0 } ?? lag.lagEvents
                    report.lag.append(.init(region: region.name, peer: peer, connected: lag.connected, events: behind, seconds: lag.lagSeconds))
                }
            case .failure(let error)?: report.unreachable[region.name] = "\(error)"
            case nil: report.unreachable[region.name] = "no answer"
            }
        }
        report.differences += backwardsLogs(statuses.compactMapValues { try? $0.get() })
        guard report.unreachable.isEmpty else {
            report.verdict = .unreachable
            return report
        }
        do {
            let minimum = VersionVector.minimum(of: regions.compactMap { vectors[$0.name] })
            report.comparedAt = minimum.compact
            report.differences += try await integrityDifferences(regions)
            report.differences += try await logDifferences(regions, at: minimum)
            let (compared, deferred, differences) = try await stateDifferences(regions)
            report.conversationsCompared = compared
            report.conversationsDeferred = deferred
            report.differences += differences
        } catch {
            // A region that answered its status and then failed is unreachable all the same.
            report.unreachable["(during the check)"] = "\(error)"
            report.verdict = .unreachable
            return report
        }
        report.verdict = report.differences.isEmpty ? .consistent : .divergent
        return report
    }

    /// Regions holding less of their own origin than a peer does: their log
    /// went backwards, and the events in between exist only elsewhere.
    static func backwardsLogs(_ statuses: [String: ReplicationStatus]) -> [ConsistencyReport.Difference] {
        var differences: [ConsistencyReport.Difference] = []
        for (region, status) in statuses.sorted(by: { $0.key < $1.key }) {
            let own = status.applied[region] ?? 0
            let ahead = statuses.filter { $0.key != region && ($0.value.applied[region] ?? 0) > own }
                .max { ($0.value.applied[region] ?? 0) < ($1.value.applied[region] ?? 0) }
            guard status.fence != nil || ahead != nil else { continue }
            var versions = [region: "holds \(region)-\(own)\(status.fence == nil ? ", not fenced yet" : ", fenced")"]
            for (peer, peerStatus) in statuses where peer != region { versions[peer] = "holds \(region)-\(peerStatus.applied[region] ?? 0)" }
            let summary = status.fence?.advice
                ?? "\(region)'s log went backwards: \(ahead!.key) holds \(region)-\(ahead!.value.applied[region] ?? 0), \(region) only \(region)-\(own); its sync fences it at the peer's next batch"
            differences.append(.init(kind: .backwards, summary: summary, origin: region, seq: Int64(own + 1), conversation: nil, versions: versions))
        }
        return differences
    }

    /// Regions storing events their vector does not account for, or missing some.
    static func integrityDifferences(_ regions: [any RegionDigestSource]) async throws -> [ConsistencyReport.Difference] {
        var differences: [ConsistencyReport.Difference] = []
        for region in regions {
            for (origin, entry) in try await region.integrity().sorted(by: { $0.key < $1.key }) where entry.applied != entry.stored {
                var difference = ConsistencyReport.Difference(
                    kind: .integrity,
                    summary: "\(region.name) stores \(entry.stored) events of origin \(origin) but has applied \(entry.applied)",
                    origin: origin, versions: [:]
                )
                if entry.stored > entry.applied {
                    // Name the first event beyond the applied seq.
                    let bucket = (entry.applied + 1) >> Int64(bucketShift)
                    var extra: EventSummary?
                    var probe = bucket
                    while extra == nil, probe <= bucket + 1_024 {
                        extra = try await region.events(origin: origin, bucket: probe, through: UInt64(Int64.max)).first { $0.seq > entry.applied }
                        probe += 1
                    }
                    if let extra {
                        difference.seq = extra.seq
                        difference.summary += "; first extra event: \(origin)-\(extra.seq)"
                        difference.versions[region.name] = extra.text
                    }
                } else if let missing = try await firstMissing(region, origin: origin, through: UInt64(entry.applied)) {
                    difference.seq = missing
                    difference.summary += "; first missing event: \(origin)-\(missing)"
                    difference.versions[region.name] = "missing"
                }
                differences.append(difference)
            }
        }
        return differences
    }

    /// The first seq in 1...through that `region` does not store.
    private static func firstMissing(_ region: any RegionDigestSource, origin: String, through: UInt64) async throws -> Int64? {
        for bucket in try await region.logBuckets(origin: origin, through: through) where bucket.events != expectedCount(bucket.bucket, through: through) {
            let stored = Set(try await region.events(origin: origin, bucket: bucket.bucket, through: through).map(\.seq))
            return seqs(of: bucket.bucket, through: through).first { !stored.contains($0) }
        }
        return nil
    }

    /// Origins whose logs differ at `vector`, each pinned to its first differing event.
    static func logDifferences(_ regions: [any RegionDigestSource], at vector: VersionVector) async throws -> [ConsistencyReport.Difference] {
        var digests: [String: [String: LogDigest]] = [:]
        for region in regions { digests[region.name] = try await region.logDigests(at: vector) }
        var differences: [ConsistencyReport.Difference] = []
        for origin in vector.origins where Set(regions.map { digests[$0.name]?[origin] }).count > 1 {
            let through = vector[origin]
            var buckets: [String: [Int64: DigestBucket]] = [:]
            for region in regions {
                buckets[region.name] = Dictionary(uniqueKeysWithValues: try await region.logBuckets(origin: origin, through: through).map { ($0.bucket, $0) })
            }
            let all = Set(buckets.values.flatMap(\.keys)).sorted()
            guard let bucket = all.first(where: { b in Set(regions.map { buckets[$0.name]?[b] }).count > 1 }) else { continue }
            var events: [String: [Int64: EventSummary]] = [:]
            for region in regions {
                events[region.name] = Dictionary(
                    try await region.events(origin: origin, bucket: bucket, through: through).map { ($0.seq, $0) }, uniquingKeysWith: { a, _ in a }
                )
            }
            let seqs = Set(events.values.flatMap(\.keys)).union(Self.seqs(of: bucket, through: through)).sorted()
            guard let seq = seqs.first(where: { s in Set(regions.map { events[$0.name]?[s]?.hash }).count > 1 }) else { continue }
            var versions: [String: String] = [:]
            for region in regions { versions[region.name] = events[region.name]?[seq]?.text ?? "missing" }
            let holders = regions.filter { events[$0.name]?[seq] != nil }.map(\.name)
            let conversation = regions.compactMap { events[$0.name]?[seq]?.conversation }.first { !$0.isEmpty }
            differences.append(.init(
                kind: .log,
                summary: "event \(origin)-\(seq) differs (held by \(holders.isEmpty ? "none" : holders.joined(separator: ", ")))",
                origin: origin, seq: seq, conversation: conversation, versions: versions
            ))
        }
        return differences
    }

    /// Conversations whose events are applied alike everywhere but whose state differs, with the differing rows.
    static func stateDifferences(_ regions: [any RegionDigestSource]) async throws -> (compared: Int, deferred: Int, [ConsistencyReport.Difference]) {
        // Buckets equal everywhere hold conversations equal everywhere: only the others are listed.
        var buckets: [String: [Int64: DigestBucket]] = [:]
        for region in regions {
            buckets[region.name] = Dictionary(uniqueKeysWithValues: try await region.conversationBuckets().map { ($0.bucket, $0) })
        }
        var compared = 0, deferred = 0
        var byConversation: [String: [String: ConversationDigest]] = [:]
        for bucket in Set(buckets.values.flatMap(\.keys)).sorted() {
            let versions = Set(regions.map { buckets[$0.name]?[bucket] })
            if versions.count == 1, let same = versions.first ?? nil {
                compared += Int(same.events)
                continue
            }
            for region in regions {
                for digest in try await region.conversations(bucket: bucket) { byConversation[digest.conversation, default: [:]][region.name] = digest }
            }
        }
        var differences: [ConsistencyReport.Difference] = []
        for (conversation, digests) in byConversation.sorted(by: { $0.key < $1.key }) {
            let logs = Set(regions.map { name -> [Int64] in
                let digest = digests[name.name]
                return [digest?.logDigest ?? 0, digest?.logEvents ?? 0]
            })
            guard logs.count == 1 else {
                deferred += 1
                continue
            }
            compared += 1
            guard Set(regions.map { digests[$0.name]?.stateDigest ?? 0 }).count > 1 else { continue }
            var rows: [String: [String: StateRow]] = [:]
            for region in regions {
                rows[region.name] = Dictionary(
                    try await region.stateRows(conversation: conversation).map { ("\($0.table) \($0.key)", $0) }, uniquingKeysWith: { a, _ in a }
                )
            }
            let keys = Set(rows.values.flatMap(\.keys)).sorted()
            for key in keys where Set(regions.map { rows[$0.name]?[key]?.hash }).count > 1 {
                var versions: [String: String] = [:]
                for region in regions { versions[region.name] = rows[region.name]?[key]?.content ?? "missing" }
                let row = regions.lazy.compactMap { rows[$0.name]?[key] }.first
                // A message row is named by the event that posted it.
                let what = row?.table == "messages" ? "the message of event \(row?.key ?? key)" : key
                differences.append(.init(
                    kind: .state, summary: "conversation \(conversation): \(what) differs", conversation: conversation, versions: versions
                ))
            }
        }
        return (compared, deferred, differences)
    }

    static let bucketShift = LogBucket.shift

    static func seqs(of bucket: Int64, through: UInt64) -> [Int64] {
        let first = max(1, bucket << Int64(bucketShift))
        let last = min(Int64(through), ((bucket + 1) << Int64(bucketShift)) - 1)
        return first <= last ? Array(first...last) : []
    }

    static func expectedCount(_ bucket: Int64, through: UInt64) -> Int64 { Int64(seqs(of: bucket, through: through).count) }

    private static func collect<T: Sendable>(
        _ regions: [any RegionDigestSource], _ ask: @escaping @Sendable (any RegionDigestSource) async throws -> T
    ) async -> [String: Result<T, any Error>] {
        await withTaskGroup(of: (String, Result<T, any Error>).self) { group in
            for region in regions {
                group.addTask {
                    do { return (region.name, .success(try await ask(region))) } catch { return (region.name, .failure(error)) }
                }
            }
            var results: [String: Result<T, any Error>] = [:]
            for await (name, result) in group { results[name] = result }
            return results
        }
    }
}
