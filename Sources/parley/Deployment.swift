import ArgumentParser
import Foundation
import Logging
import ParleyAuth
import ParleyCore
import ParleyDeployment
import ParleyMetrics
import ParleyTracing
import ServiceLifecycle
import ParleyProbe
import ParleyStore

/// Where the region files are and which region this process belongs to.
struct DeploymentOptions: ParsableArguments {
    @Option(help: "Folder holding cluster.json and one <region>.json per region.")
    var regions = "regions"

    @Option(help: "This process's region (a file <region>.json in --regions).")
    var region = "eu"

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    @Option(help: "Log lines as text or json (one object per line); default: PARLEY_LOG_FORMAT, else text.")
    var logFormat = ProcessInfo.processInfo.environment["PARLEY_LOG_FORMAT"] ?? "text"

    @Option(help: ArgumentHelp("Reach a peer region's sync at this address instead of its region file's (repeatable).",
                               discussion: "REGION=HOST:PORT, e.g. through `parley proxy` to delay or cut that link.",
                               valueName: "region=host:port"))
    var peerSync: [String] = []

    @Option(help: ArgumentHelp("Milliseconds added to this process's wall clock (negative: behind).",
                               discussion: "For tests and drills of a region whose clock is off; hybrid logical clocks keep causal order."))
    var clockSkewMs = 0

    /// The process's hybrid logical clock, over the (possibly skewed) wall clock.
    var clock: HybridLogicalClock {
        let skew = Int64(clockSkewMs)
        return HybridLogicalClock { UInt64(max(0, Int64(HybridLogicalClock.systemMilliseconds()) + skew)) }
    }

    func load() throws -> (region: RegionFile, cluster: ClusterFile) {
        let cluster = try ClusterFile.decode(read("cluster.json"))
        let region = try RegionFile.decode(read("\(self.region).json"))
        return (region, cluster)
    }

    /// Every other region of the cluster, by name, with `--peer-sync` applied.
    func peers() throws -> [RegionFile] {
        let cluster = try ClusterFile.decode(read("cluster.json"))
        var via: [String: String] = [:]
        for entry in peerSync {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, cluster.regions.contains(parts[0]), parts[1].contains(":") else {
                throw ValidationError("--peer-sync wants REGION=HOST:PORT with a region of the cluster, not \(entry)")
            }
            via[parts[0]] = parts[1]
        }
        return try cluster.regions.filter { $0 != region }.map { name in
            var peer = try RegionFile.decode(read("\(name).json"))
            if let address = via[name] { peer.sync = address }
            return peer
        }
    }

    /// The region's PostgreSQL, as every role that stores connects to it.
    func postgres(of region: RegionFile) throws -> PostgresLocation {
        var location = PostgresLocation(
            host: region.postgres.host, port: region.postgres.port,
            password: try region.postgres.resolvedPassword(environment: "PARLEY_POSTGRES_PASSWORD", relativeTo: regions)
        )
        location.certificateAuthority = region.postgres.certificateAuthority(relativeTo: regions)
        return location
    }

    /// The region's Redis password (`requirepass`), if it has one.
    func redisPassword(of region: RegionFile) throws -> String? {
        try region.redis.resolvedPassword(environment: "PARLEY_REDIS_PASSWORD", relativeTo: regions)
    }

    var tokenSecret: String {
        get throws { try load().cluster.resolvedTokenSecret() }
    }

    /// TLS with the cluster's certificates, or plaintext where the cluster asks for it.
    var security: LinkSecurity {
        get throws { try load().cluster.resolvedSecurity(relativeTo: regions) }
    }

    /// The certificate `process` presents, or nil when links are plaintext.
    func tlsIdentity(_ process: ProcessName) throws -> TLSIdentity? {
        guard let folder = try security.certificates else { return nil }
        return TLSIdentity(certificate: folder.certificate(of: process), privateKey: folder.privateKey(of: process), authority: folder.authority)
    }

    /// The operator's admin token: PARLEY_ADMIN_TOKEN, else cluster.json's `adminToken`.
    var adminToken: String {
        get throws { try load().cluster.resolvedAdminToken() }
    }

    /// The credential guarding this process's admin surfaces, with the loud
    /// warning when the development token guards a non-loopback listener.
    func adminCredential(listeningOn hosts: [String], logger: Logger) throws -> AdminCredential {
        let token = try adminToken
        if let warning = AdminCredential.developmentTokenWarning(token: token, listeningOn: hosts) { logger.critical("\(warning)") }
        return try AdminCredential(token: token)
    }

    /// Where this process serves `GET /metrics`: `address` (from
    /// `--metrics`, "none": nowhere), else the region file's entry, behind
    /// the admin token.
    /// Also points swift-metrics at this process's registry: call it before
    /// the role makes its metrics.
    func metricsListener(_ address: String?, regionFile: String?, logger: Logger) throws -> MetricsListener? {
        ProcessMetrics.bootstrap()
        guard let address = address ?? regionFile, address != "none" else { return nil }
        let endpoint = try Endpoint(address)
        return MetricsListener(endpoint: endpoint, admin: try adminCredential(listeningOn: [endpoint.host], logger: logger))
    }

    /// Logs with the current span's trace and span ids, and traces exported
    /// over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set: the service to run
    /// beside the role (nil: tracing off). Call it before making any logger.
    func telemetry(_ service: String, region: String) throws -> (any Service)? {
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format is text or json, not \(logFormat)") }
        let json = logFormat == "json"
        LoggingSystem.bootstrap({ label, provider -> any LogHandler in
            if json { return JSONLogHandler(label: label, metadataProvider: provider) }
            return StreamLogHandler.standardError(label: label, metadataProvider: provider)
        }, metadataProvider: ProcessTracing.loggingMetadata)
        return try ProcessTracing.bootstrap(service: service, region: region)
    }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        logger[metadataKey: "region"] = "\(region)"
        return logger
    }

    private func read(_ file: String) throws -> [UInt8] {
        let path = URL(fileURLWithPath: regions).appendingPathComponent(file).path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read \(path)")
        }
        return Array(data)
    }
}
