import CoreMetrics
import ParleyCore
import ParleyMetrics
import ParleyProto

/// What a gate counts (docs/OPERATIONS.md, "Metrics"), through swift-metrics.
struct GateMetrics: Sendable {
    enum Transport: String, CaseIterable, Sendable {
        case tcp
        case webSocket = "websocket"
        /// WebSocket speaking the `parley.json` subprotocol: browsers.
        case webSocketJSON = "websocket_json"
        case longPoll = "longpoll"
    }

    /// How a sign-in ended: `ok` or the refusal's code.
    enum SignIn: String, CaseIterable, Sendable {
        case ok
        case tokenInvalid = "token_invalid"
        case tokenExpired = "token_expired"
        case tokenRevoked = "token_revoked"
        case rateLimited = "rate_limited"
        case unavailable
    }

    private let connections: [Transport: Meter]
    private let framesIn: [Transport: CoreMetrics.Counter]
    private let framesOut: [Transport: CoreMetrics.Counter]
    private let errors = CounterFamily("parley_gate_errors_total", by: "code", values: ClientErrorCode.all.map(\.description))
    private let signIns = CounterFamily("parley_gate_sign_ins_total", by: "result", values: SignIn.allCases.map(\.rawValue))
    /// Frames a connection's writer found waiting each time it woke.
    private let outboxDepth = Recorder(label: "parley_gate_outbox_depth", aggregate: true)
    /// From handing a request to logic to its answer.
    private let logicLatency = CoreMetrics.Timer(label: "parley_gate_logic_seconds")

    init() {
        func each<M>(_ make: (Transport) -> M) -> [Transport: M] {
            Dictionary(uniqueKeysWithValues: Transport.allCases.map { ($0, make($0)) })
        }
        connections = each { Meter(label: "parley_gate_connections", dimensions: [("transport", $0.rawValue)]) }
        framesIn = each { CoreMetrics.Counter(label: "parley_gate_frames_in_total", dimensions: [("transport", $0.rawValue)]) }
        framesOut = each { CoreMetrics.Counter(label: "parley_gate_frames_out_total", dimensions: [("transport", $0.rawValue)]) }
    }

    func opened(_ transport: Transport) { connections[transport]?.increment() }
    func closed(_ transport: Transport) { connections[transport]?.decrement() }
    func received(_ transport: Transport) { framesIn[transport]?.increment() }

    /// A batch the writer takes from an outbox and writes.
    func writing(_ frames: [Parley_Frame], on transport: Transport) {
        framesOut[transport]?.increment(by: frames.count)
        outboxDepth.record(frames.count)
        for frame in frames {
            if case .error(let error) = frame.body { errors.increment(ClientErrorCode(rawValue: error.code).description) }
        }
    }

    func signIn(_ result: SignIn) { signIns.increment(result.rawValue) }

    func answered(after nanoseconds: Int64) { logicLatency.recordNanoseconds(nanoseconds) }
}
