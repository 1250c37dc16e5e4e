// swift-tools-version: 6.1
import PackageDescription

// One module per role (DESIGN §6). Dependency rules:
// - ParleyCore imports no NIO, Postgres, Redis or gRPC;
// - ParleyGate never imports ParleyStore;
// - roles talk over RPC (ParleyProto), never by importing each other;
// - ParleyClient imports only core, protocol and its transports.
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
    ],
    targets: [
        // Pure core: events, vector clocks, HLC, identifiers, error codes.
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
            ]
        ),
        // Signed, expiring tokens valid in every region.
        .target(
            name: "ParleyAuth",
            dependencies: [.product(name: "JWTKit", package: "jwt-kit")]
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
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // gRPC plumbing shared by the roles: servers and a pool of clients by address.
        .target(
            name: "ParleyRPC",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "ParleyLogic",
            dependencies: [
                "ParleyCore", "ParleyProto", "ParleyWire", "ParleyStore", "ParleyPresence", "ParleyRPC", "ParleyRedis",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ParleyGate",
            dependencies: [
                "ParleyCore", "ParleyProto", "ParleyWire", "ParleyAuth", "ParleyPresence", "ParleyRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `parley sync`: replication between regions.
        .target(
            name: "ParleySync",
            dependencies: [
                "ParleyCore", "ParleyProto", "ParleyStore", "ParleyRPC",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
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
                "ParleyCore", "ParleyRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
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
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Client SDK: ships to apps alone.
        .target(
            name: "ParleyClient",
            dependencies: [
                "ParleyCore", "ParleyProto", "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Client-side tools behind `parley demo`, `parley chat` and `parley bench`.
        .target(
            name: "ParleyTools",
            dependencies: [
                "ParleyClient", "ParleyCore", "ParleyProto", "ParleyAuth", "ParleyFault",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // Ephemeral real servers (Postgres, Redis) and whole regions for tests.
        .target(
            name: "ParleyTestSupport",
            dependencies: ["ParleyCore", "ParleyFault"]
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyCore", "ParleyAuth", "ParleyGate", "ParleyLogic", "ParleySync", "ParleyClient", "ParleyTools", "ParleyRPC", "ParleyStore",
                "ParleyFault", "ParleyRoute",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "ParleyCoreTests", dependencies: ["ParleyCore"]),
        .testTarget(
            name: "ParleyWireTests",
            dependencies: [
                "ParleyWire", "ParleyProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ParleyAuthTests", dependencies: ["ParleyAuth"]),
        .testTarget(
            name: "ParleyFaultTests",
            dependencies: [
                "ParleyFault",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ParleyRedisTests", dependencies: ["ParleyRedis", "ParleyPresence", "ParleyTestSupport"]),
        .testTarget(
            name: "ParleyStoreTests",
            dependencies: [
                "ParleyStore", "ParleyCore", "ParleyProto", "ParleyTestSupport", "ParleyRPC",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ParleyRegionTests",
            dependencies: [
                "ParleyClient", "ParleyCore", "ParleyProto", "ParleyWire", "ParleyAuth", "ParleyTools", "ParleyTestSupport", "ParleyFault",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
