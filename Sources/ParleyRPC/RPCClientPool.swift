import GRPCCore
import GRPCNIOTransportHTTP2
import ParleyCore
import ServiceLifecycle
import Synchronization

/// gRPC clients by `host:port`, created on first use and kept connected.
///
/// A client's connections run inside this pool's `run()`, so the pool must
/// run (it is a `Service`) for its clients to make progress. With `tls`,
/// every connection is mutual TLS: this process's certificate shown, the
/// server's checked against the cluster's authority and the host dialled.
public final class RPCClientPool: Service, Sendable {
    public typealias Client = GRPCClient<HTTP2ClientTransport.Posix>

    private let clients = Mutex<[String: Client]>([:])
    private let started: AsyncStream<Client>
    private let startClient: AsyncStream<Client>.Continuation
    private let tls: TLSIdentity?

    public init(tls: TLSIdentity?) {
        self.tls = tls
        (started, startClient) = AsyncStream.makeStream()
    }

    /// The client for `address` ("host:port").
    public func client(for address: String) throws -> Client {
        let (client, isNew) = try clients.withLock { clients -> (Client, Bool) in
            if let existing = clients[address] { return (existing, false) }
            let endpoint = try Endpoint(address)
            // A peer that comes back is reconnected to within two seconds
            // (gRPC's default backoff grows to two minutes).
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
            // A peer that vanishes without a reset (a partition, a blackholed link)
            // is noticed within about five seconds instead of never: the connection
            // pings every 3 s and is closed when an answer takes over 2 s. The
            // timeout must stay below the interval: the transport restarts the
            // timeout with every ping, so a longer one never fires.
            config.connection.keepalive = .init(time: .seconds(3), timeout: .seconds(2), allowWithoutCalls: true)
            // An address goes as one: TLS checks it against the certificate's
            // addresses (a name would go in SNI, which cannot carry an address).
            let target: any ResolvableTarget = endpoint.isIPv4Address
                ? .ipv4(address: endpoint.host, port: endpoint.port) : .dns(host: endpoint.host, port: endpoint.port)
            let client = GRPCClient(
                transport: try .http2NIOPosix(target: target, transportSecurity: tls?.rpcClientSecurity ?? .plaintext, config: config)
            )
            clients[address] = client
            return (client, true)
        }
        if isNew { startClient.yield(client) }
        return client
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for await client in started.cancelOnGracefulShutdown() {
                group.addTask { try? await client.runConnections() }
            }
            for client in clients.withLock({ Array($0.values) }) { client.beginGracefulShutdown() }
        }
    }
}

extension CallOptions {
    /// Internal RPCs fail fast when a peer is down, so the caller can retry
    /// elsewhere. Long-lived streams pass no timeout.
    public static func failFast(timeout: Duration?) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        return options
    }

    /// A long-lived link whose stream messages are batches of items (`LinkBatch`).
    public static var batchedLink: CallOptions {
        var options = CallOptions.failFast(timeout: nil)
        options.maxRequestMessageBytes = LinkBatch.maxMessageBytes
        options.maxResponseMessageBytes = LinkBatch.maxMessageBytes
        return options
    }

    /// Calls that wait, up to `timeout`, for a peer that may be reconnecting.
    public static func waitingForReady(timeout: Duration) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = true
        return options
    }
}
