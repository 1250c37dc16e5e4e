// swift-tools-version: 6.1
import PackageDescription

// One module per role; docs/ARCHITECTURE.md lists the modules and the
// dependency rules, which ops/check-imports checks (run by ops/test):
// - ParleyCore imports no NIO, Postgres, Redis or gRPC;
// - ParleyGate never imports ParleyStore;
// - roles talk over RPC (ParleyProto), never by importing each other;
// - ParleyClient imports only core, protocol and its transports;
// - the executable only wires.
let package = Package(
    name: "parley",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .library(name: "ParleyClient", targets: ["ParleyClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over gRPC only: the HTTP exporter would bring async-http-client.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPGRPC"]),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird.git", from: "2.1.0"),
        // Its command-line generator only, built by ops/gen-openapi (never as a build plugin).
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
    ],
    targets: [
        // Pure core: data and rules, no I/O.
        .target(name: "ParleyCore"),
        // Generated protobuf and gRPC code (ops/gen-proto regenerates it).
        .target(
            name: "ParleyProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        // Length-prefixed frame codec and error mapping shared by gate and client.
        .target(
            name: "ParleyWire",
            dependencies: [
                "ParleyCore", "ParleyProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Signed, expiring tokens valid in every region; the admin credential;
        // the cluster's certificate authority.
        .target(
            name: "ParleyAuth",
            dependencies: [
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Async Redis client: NIO owns the socket, hiredis's reader and formatter own RESP.
        .target(
            name: "ParleyRedis",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Presence: which gate node holds each device of a user.
        .target(name: "ParleyPresence", dependencies: ["ParleyRedis"]),
        // PostgreSQL: migrations, the event log and derived state.
        .target(
            name: "ParleyStore",
            dependencies: [
                "ParleyCore", "ParleyProto",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Where each region is and what the cluster shares: the files in regions/.
        .target(name: "ParleyDeployment", dependencies: ["ParleyCore"]),
        // Health probes: short TCP and HTTP/1.1 exchanges within a deadline,
        // in TLS when the deployment's links are; TLS settings from certificate files.
        .target(
            name: "ParleyProbe",
            dependencies: [
                "ParleyCore", "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Every process's metrics: swift-metrics backed by Prometheus, served on /metrics.
        .target(
            name: "ParleyMetrics",
            dependencies: [
                "ParleyCore", "ParleyAuth",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Every process's traces: swift-otel's OTLP/gRPC exporter behind swift-distributed-tracing.
        .target(
            name: "ParleyTracing",
            dependencies: [
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // gRPC plumbing shared by the roles: servers, a pool of clients by
        // address, streams reopened with backoff, serving once prepared, and
        // the link to a logic instance (gates and logic's writer forwarding).
        .target(
            name: "ParleyRPC",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                "ParleyCore", "ParleyProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .target(
            name: "ParleyLogic",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                "ParleyCore", "ParleyProto", "ParleyWire", "ParleyStore", "ParleyPresence", "ParleyRPC", "ParleyProbe", "ParleyRedis", "ParleyMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ParleyGate",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                "ParleyCore", "ParleyProto", "ParleyWire", "ParleyAuth", "ParleyPresence", "ParleyRPC", "ParleyProbe", "ParleyMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `parley sync`: replication between regions.
        .target(
            name: "ParleySync",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                "ParleyCore", "ParleyProto", "ParleyStore", "ParleyRPC", "ParleyProbe", "ParleyAuth",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // `parley route`: nearest healthy region first, health probes with hysteresis, drain.
        .target(
            name: "ParleyRoute",
            dependencies: [
                "ParleyCore", "ParleyDeployment", "ParleyRPC", "ParleyProbe", "ParleyAuth", "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A TCP proxy that delays, loses, drops, blackholes or cuts a link: this
        // kernel has no netem; tests, benchmarks and drills hurt links with it.
        .target(
            name: "ParleyFault",
            dependencies: [
                "ParleyProbe", "ParleyAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Generated from openapi/platform.yaml (ops/gen-openapi regenerates it).
        .target(
            name: "ParleyPlatformAPI",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // The generator silences its unused `public import`s only for
            // Swift 6.4 and later (`@diagnose(UnusedImportAccess, ...)`).
            swiftSettings: [.unsafeFlags(["-suppress-warnings"])]
        ),
        // `parley ext`: follow-up work off the core's path (offline push) and the platform API.
        .target(
            name: "ParleyExt",
            dependencies: [
                "ParleyCore", "ParleyProto", "ParleyStore", "ParleyPresence", "ParleyRedis", "ParleyRPC", "ParleyProbe", "ParleyMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "ParleyPlatformAPI",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Client SDK: ships to apps alone.
        .target(
            name: "ParleyClient",
            dependencies: [
                "ParleyCore", "ParleyProto", "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Client-side tools behind `parley demo`, `parley chat`, `parley bench` and `parley push-sink`.
        .target(
            name: "ParleyTools",
            dependencies: [
                "ParleyClient", "ParleyCore", "ParleyProto", "ParleyAuth", "ParleyWire", "ParleyExt", "ParleyProbe",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // `parley check`: asks every region's sync for digests and compares them.
        .target(name: "ParleyCheck", dependencies: ["ParleyCore", "ParleyProbe"]),
        // `parley drill`: faults on the ops/up cluster under simulated load, and the report.
        .target(
            name: "ParleyDrill",
            dependencies: [
                "ParleyClient", "ParleyCore", "ParleyDeployment", "ParleyProto", "ParleyAuth", "ParleyFault", "ParleyRoute",
                "ParleyCheck", "ParleyTools",
            ]
        ),
        // `parley dashboard`: the operator's page and the API it polls.
        .target(
            name: "ParleyDashboard",
            dependencies: [
                "ParleyCore", "ParleyDeployment", "ParleyAuth", "ParleyProbe", "ParleyCheck", "ParleyDrill", "ParleyRoute",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the fuzz targets do with one input (Fuzz/, ops/fuzz), here so
        // the unit tests replay the committed corpus through the same code.
        .target(
            name: "ParleyFuzzTargets",
            dependencies: [
                "ParleyWire", "ParleyProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // Ephemeral real servers (Postgres, Redis) and whole regions for tests.
        .target(
            name: "ParleyTestSupport",
            dependencies: ["ParleyCore", "ParleyDeployment", "ParleyFault", "ParleyProbe"]
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyCore", "ParleyDeployment", "ParleyAuth", "ParleyGate", "ParleyLogic", "ParleySync", "ParleyClient", "ParleyTools",
                "ParleyDrill", "ParleyCheck", "ParleyRPC", "ParleyProbe", "ParleyStore", "ParleyFault", "ParleyRoute", "ParleyExt", "ParleyMetrics", "ParleyDashboard", "ParleyTracing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "ParleyCoreTests", dependencies: ["ParleyCore", "ParleyTestSupport"]),
        .testTarget(name: "ParleyClientTests", dependencies: ["ParleyClient", "ParleyCore", "ParleyProto"]),
        .testTarget(name: "ParleyLogicTests", dependencies: ["ParleyLogic", "ParleyStore", "ParleyCore", "ParleyProto"]),
        .testTarget(
            name: "ParleyWireTests",
            dependencies: [
                "ParleyWire", "ParleyProto", "ParleyFuzzTargets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ParleyExtTests", dependencies: ["ParleyExt", "ParleyCore", "ParleyProto", "ParleyStore", "ParleyPlatformAPI"]),
        .testTarget(
            name: "ParleyAuthTests",
            dependencies: [
                "ParleyAuth", "ParleyDeployment",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .testTarget(
            name: "ParleyFaultTests",
            dependencies: [
                "ParleyFault", "ParleyAuth", "ParleyProbe", "ParleyTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ParleyRedisTests", dependencies: ["ParleyRedis", "ParleyPresence", "ParleyTestSupport"]),
        .testTarget(
            name: "ParleyStoreTests",
            dependencies: [
                "ParleyStore", "ParleyLogic", "ParleyAuth", "ParleyCore", "ParleyProto", "ParleyTestSupport", "ParleyProbe", "ParleyFault",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ParleyRegionTests",
            dependencies: [
                "ParleyClient", "ParleyCore", "ParleyDeployment", "ParleyProto", "ParleyWire", "ParleyAuth", "ParleyTools", "ParleyDrill",
                "ParleyCheck", "ParleyProbe", "ParleyTestSupport", "ParleyFault", "ParleyRPC",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
    ]
)

// The libFuzzer entry points exist only for ops/fuzz (PARLEY_FUZZ=1), which
// builds them with -sanitize=fuzzer -parse-as-library in .build-fuzz: they
// have no main of their own (libFuzzer brings it).
if Context.environment["PARLEY_FUZZ"] == "1" {
    package.targets += ["FrameStream", "FrameMessage", "FrameJSON", "WebSocket"].map { target in
        .executableTarget(name: "Fuzz\(target)", dependencies: ["ParleyFuzzTargets"], path: "Fuzz/\(target)")
    }
}
