import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import ParleyCore
import ParleyWire
import Synchronization

/// One short TCP exchange for health probes: connect, optionally write a
/// request, read until the answer is complete, close; all within a timeout.
public enum TCPProbe {
    /// Connects to `address` (`host:port`), writes `request`, and returns what
    /// was read once `complete` says the answer is whole (or the peer closed).
    /// Without a request, a successful connect is the whole probe. With
    /// `tls`, the request and answer go through a TLS session.
    @discardableResult
    public static func exchange(
        _ address: String, timeout: Duration, tls: ClientTLS? = nil, request: String? = nil,
        complete: @escaping @Sendable (String) -> Bool = { _ in true }
    ) async throws -> String {
        let endpoint = try Endpoint(address)
        let connected = ConnectedFlag()
        do {
            return try await withDeadline(timeout, "\(address)") {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.nanoseconds(timeout.nanoseconds))
                    .connect(host: endpoint.host, port: endpoint.port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let tls, request != nil { try channel.pipeline.syncOperations.addHandler(try tls.handler(host: endpoint.host)) }
                            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
                connected.set()
                return try await channel.executeThenClose { inbound, outbound in
                    guard let request else { return "" }
                    try await outbound.write(ByteBuffer(string: request))
                    var answer = ""
                    for try await chunk in inbound {
                        answer += String(buffer: chunk)
                        if complete(answer) { break }
                    }
                    return answer
                }
            }
        } catch let error as PeerError where error.kind == .timedOut && !connected.isSet {
            throw PeerError(.noConnection, peer: address, "no connection within \(timeout)")
        } catch ChannelError.connectTimeout {
            throw PeerError(.noConnection, peer: address, "no connection within \(timeout)")
        }
    }

    /// An HTTP/1.1 GET's status code and body.
    public static func httpGet(_ address: String, path: String, tls: ClientTLS? = nil, timeout: Duration) async throws -> (status: Int, body: String) {
        try await http("GET", address, path: path, tls: tls, timeout: timeout)
    }

    /// One HTTP/1.1 request on a connection of its own: the answer's status
    /// code and body. `headers` are written as given, after Host.
    public static func http(
        _ method: String, _ address: String, path: String, headers: [(String, String)] = [], body: String = "", tls: ClientTLS? = nil,
        timeout: Duration
    ) async throws -> (status: Int, body: String) {
        let headerLines = headers.map { "\($0.0): \($0.1)\r\n" }.joined()
        let answer = try await exchange(
            address, timeout: timeout, tls: tls,
            request: "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\n\(headerLines)Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)",
            complete: { _ in false }  // read until the server closes
        )
        let parts = answer.components(separatedBy: "\r\n\r\n")
        let statusLine = parts.first?.split(separator: "\r\n").first ?? ""
        let fields = statusLine.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/1."), let status = Int(fields[1]) else {
            throw PeerError(.malformedAnswer, peer: "\(address)\(path)", "status line \(statusLine.prefix(40))")
        }
        return (status, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }
}

/// Set once a probe's connection is up: a probe that times out after that
/// reached a live but slow peer.
private final class ConnectedFlag: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}

/// Runs `work`, or throws `PeerError.timedOut` naming `what` once `timeout` passed.
public func withDeadline<T: Sendable>(
    _ timeout: Duration, _ what: String, _ work: @escaping @Sendable () async throws -> T
) async throws -> T {
    // Not a task group: a group waits for its children, so work that does
    // not stop when cancelled (a PostgreSQL connection lease while the
    // region's primary is being replaced) would hold the answer past the
    // deadline. The work is cancelled at the deadline and left to finish alone.
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.begin(continuation)
            let worker = Task {
                do { race.finish(.success(try await work())) } catch { race.finish(.failure(error)) }
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                race.finish(.failure(PeerError(.timedOut, peer: what, "no answer within \(timeout)")))
            }
            race.hold(worker, timer)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of the work's outcome, the deadline and cancellation resumes
/// the caller; then both tasks are cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        var done = false
    }
    private let state = Mutex(State())

    func begin(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            return early
        }
        if let early { continuation.resume(with: early) }
    }

    func hold(_ tasks: Task<Void, Never>...) {
        let cancelNow = state.withLock { state -> Bool in
            state.tasks += tasks
            return state.done
        }
        if cancelNow { for task in tasks { task.cancel() } }
    }

    func finish(_ outcome: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { state -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !state.done else { return (nil, []) }
            state.done = true
            if state.continuation == nil { state.early = outcome }
            defer { state.continuation = nil }
            return (state.continuation, state.tasks)
        }
        continuation?.resume(with: outcome)
        for task in tasks { task.cancel() }
    }
}

/// One health check's entry in a report: "ok", or what failed.
public func checkOutcome(_ check: @escaping @Sendable () async throws -> Void) async -> String {
    do {
        try await check()
        return "ok"
    } catch {
        return "\(error)"
    }
}

