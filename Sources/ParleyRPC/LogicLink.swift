import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ServiceLifecycle
import Synchronization

/// A long-lived link to one logic instance: calls go up one bidirectional
/// stream and their answers come down it. A gate's link says hello with its
/// node id, so pushes for its devices come down it too; a logic instance
/// handing its changes to the region's writer links without a node and gets
/// answers only. Reconnects with backoff when the stream ends.
public final class LogicLink: Service, Sendable {
    private struct State {
        /// The current stream's queue, from the moment it is opened.
        var upstream: BatchQueue<Parley_GateUp>?
        /// The instance has answered on the current stream (its first,
        /// empty batch), so the stream is open end to end.
        var ready = false
        var pending: [UInt64: (answer: OneShot<Parley_Frame>, due: ContinuousClock.Instant)] = [:]
        var nextCallID: UInt64 = 1
        var shuttingDown = false
    }

    public let address: String
    /// How long a call may wait for its answer.
    public let timeout: Duration
    private let node: String?
    private let pool: RPCClientPool
    private let onDelivery: @Sendable (Parley_Delivery) -> Void
    private let logger: Logger
    private let state = Mutex(State())

    /// `node` is the gate node whose pushes this link carries (`onDelivery`
    /// receives them); nil for a link that carries answers only.
    public init(
        address: String, timeout: Duration, node: String?, pool: RPCClientPool, logger: Logger,
        onDelivery: @escaping @Sendable (Parley_Delivery) -> Void = { _ in }
    ) {
        self.address = address
        self.timeout = timeout
        self.node = node
        self.pool = pool
        self.onDelivery = onDelivery
        self.logger = logger
    }

    /// Sends one call and waits for its answer. Throws `LinkError.down` at once
    /// when the link is not up, so the router can try another instance, and
    /// `LinkError.timedOut` when no answer came within `timeout` (an instance that
    /// hangs rather than dies: the call may still take effect there).
    public func call(_ call: Parley_ClientCall) async throws -> Parley_Frame {
        try await send(call).value()
    }

    /// Whether the instance has answered on the current stream: a call sent now is taken.
    public var isOpen: Bool { state.withLock { $0.upstream != nil && $0.ready } }

    /// Puts the call on the link now (calls sent one after the other reach
    /// logic in that order) and returns where its answer will arrive; throws
    /// `LinkError.down` at once when the link is not up. A stream still
    /// opening takes calls too, and fails them if it does not open, unless
    /// `onlyIfOpen`: then only a stream the instance has answered on does,
    /// for a caller that has somewhere else to send the call meanwhile.
    public func send(_ call: Parley_ClientCall, onlyIfOpen: Bool = false) throws -> OneShot<Parley_Frame> {
        let answer = OneShot<Parley_Frame>()
        let sent = state.withLock { state -> Bool in
            guard let upstream = state.upstream, state.ready || !onlyIfOpen else { return false }
            var call = call
            call.callID = state.nextCallID
            state.nextCallID += 1
            state.pending[call.callID] = (answer, .now + timeout)
            upstream.push(.with { $0.call = call })
            return true
        }
        guard sent else { throw LinkError.down(address: address) }
        return answer
    }

    /// Fails the calls past their deadline. One timer per link, not one per
    /// call: the deadline is checked every quarter of the timeout, so a call
    /// fails between 1 and 1.25 timeouts after it was sent.
    private func expireOverdueCalls() async {
        let period = timeout / 4
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period) }
            let now = ContinuousClock.now
            let overdue = state.withLock { state in
                let ids = state.pending.filter { $0.value.due <= now }.map(\.key)
                return ids.compactMap { state.pending.removeValue(forKey: $0)?.answer }
            }
            for waiter in overdue { waiter.resolve(.failure(LinkError.timedOut(address: address, timeout: timeout))) }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.expireOverdueCalls() }
                await reconnecting("logic link \(self.address)", logger: self.logger) { try await self.connect() }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            // Ending our side of the stream lets logic answer what is in flight and close it.
            let upstream = self.state.withLock { state in
                state.shuttingDown = true
                return state.upstream
            }
            upstream?.close()
        }
    }

    private func connect() async throws {
        let upstream = BatchQueue<Parley_GateUp>(maxBatch: 1024)
        if let node { upstream.push(.with { $0.hello = .with { $0.node = node } }) }
        let open = state.withLock { state in
            if !state.shuttingDown { state.upstream = upstream }
            return !state.shuttingDown
        }
        guard open else { return }
        defer { fail(upstream) }
        let logic = Parley_Logic.Client(wrapping: try pool.client(for: address))
        try await logic.link(options: .batchedLink) { writer in
            while let queued = await upstream.next() {
                try await writer.write(contentsOf: LinkBatch.split(queued).map { items in .with { $0.items = Array(items) } })
            }
        } onResponse: { response in
            // The instance ended the stream (it shuts down): end ours too, or
            // the writer above would wait on the queue, the link would look up,
            // and the next call would be lost with it.
            defer { upstream.close() }
            for try await batch in response.messages {
                if batch.items.isEmpty { self.state.withLock { $0.ready = true } }
                for down in batch.items { self.received(down) }
            }
        }
    }

    private func received(_ down: Parley_LogicDown) {
        switch down.kind {
        case .result(let result):
            let waiter = state.withLock { $0.pending.removeValue(forKey: result.callID) }
            waiter?.answer.resolve(.success(result.frame))
        case .delivery(let delivery):
            onDelivery(delivery)
        case nil:
            break
        }
    }

    /// The link ended: calls in flight fail so their requests can be retried elsewhere.
    private func fail(_ upstream: BatchQueue<Parley_GateUp>) {
        upstream.close()
        let waiters = state.withLock { state in
            state.upstream = nil
            state.ready = false
            defer { state.pending = [:] }
            return state.pending
        }
        for waiter in waiters.values { waiter.answer.resolve(.failure(LinkError.down(address: address))) }
    }
}

/// Why a call to a logic instance failed. A device is told only the code
/// and a retry hint (`clientError`); the address and deadline go to logs.
public enum LinkError: Error, CustomStringConvertible, ClientErrorConvertible {
    /// The instance could not take (or answer) the call: the link is not up or was lost.
    case down(address: String)
    /// The instance took the call but did not answer within `timeout`.
    case timedOut(address: String, timeout: Duration)

    public var description: String {
        switch self {
        case .down(let address): "no link to logic \(address)"
        case .timedOut(let address, let timeout): "logic \(address) did not answer within \(timeout)"
        }
    }

    public var clientError: ClientError {
        switch self {
        case .down: ClientError(.unavailable, "no logic instance reachable; retry", detail: description)
        case .timedOut(_, let timeout):
            ClientError(.timeout, "no answer within \(timeout); it may have taken effect: retry", detail: description)
        }
    }
}
