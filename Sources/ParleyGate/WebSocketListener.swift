import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import ParleyCore
import ParleyProto
import ParleyRPC
import ParleyWire
import ServiceLifecycle

/// Accepts WebSocket clients on `/ws`: one binary message per frame, the
/// same payload as over TCP, or, for a client that asks for the
/// `parley.json` subprotocol, one text message per frame in protobuf's JSON
/// mapping; and long-poll clients on `/lp/...`
/// (`LongPollSessions`). `GET /health` answers whether this gate can serve
/// (`GateHealth`). With `tls`, all of it is HTTPS (`wss://`, `https://`).
struct WebSocketListener: Service {
    let listen: Endpoint
    let maxFrameSize: Int
    let tls: TLSConfiguration?
    let gate: GateContext
    let health: GateHealth
    let longPollHold: Duration
    let webClient: WebClient?

    func run() async throws {
        let gate = self.gate
        let maxFrameSize = self.maxFrameSize
        let router = Router(context: GateWebSocketContext.self)
        // Plain HTTP requests go to `http`; `router` only decides upgrades.
        let http = Router(context: GateHTTPContext.self)
        let health = self.health
        http.get("/health") { _, _ -> Response in
            let (healthy, body) = await health.answer()
            return Response(
                status: healthy ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        LongPollSessions(gate: gate, maxFrameSize: maxFrameSize, hold: longPollHold).register(on: http)
        webClient?.register(on: http, logger: gate.logger)
        router.ws("/ws") { request, _ in
            // The chosen subprotocol is named back, as browsers insist.
            .upgrade(Self.wantsJSON(request) ? [.secWebSocketProtocol: Parley_Frame.jsonSubprotocol] : [:])
        } onUpgrade: { inbound, outbound, context in
            let connection = gate.registry.open(now: WallClock.milliseconds(), address: context.requestContext.remoteAddress?.ipAddress)
            let json = Self.wantsJSON(context.request)
            // Messages up to twice the limit are read so an oversized frame gets
            // its error code; beyond that the WebSocket layer closes with 1009.
            let frames = inbound.messages(maxSize: maxFrameSize * 2).map { message throws(FrameError) -> ByteBuffer in
                switch message {
                case .binary(let buffer) where !json:
                    guard buffer.readableBytes <= maxFrameSize else { throw .tooLarge(length: buffer.readableBytes, limit: maxFrameSize) }
                    return buffer
                case .text(let text) where json:
                    guard text.utf8.count <= maxFrameSize else { throw .tooLarge(length: text.utf8.count, limit: maxFrameSize) }
                    return try Parley_Frame.encoded(fromJSON: text)
                default:
                    throw .malformed
                }
            }
            await ClientSession(gate: gate, connection: connection, transport: json ? .webSocketJSON : .webSocket).serve(
                inbound: frames,
                write: { frames in
                    for frame in frames {
                        try await outbound.write(json ? .text(try Parley_Frame.json(fromEncoded: frame)) : .binary(frame))
                    }
                },
                closeTransport: { try? await outbound.close(.normalClosure, reason: nil) }
            )
        }
        let server = HTTPServerBuilder.http1WebSocketUpgrade(
            webSocketRouter: router,
            configuration: .init(ws: .init(maxFrameSize: maxFrameSize * 2))
        )
        let app = Application(
            router: http,
            server: try tls.map { try .tls(server, tlsConfiguration: $0) } ?? server,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "parley-gate"),
            logger: gate.logger
        )
        gate.logger.info("gate accepting WebSocket and long-poll", metadata: ["listen": "\(listen)", "tls": "\(tls != nil)"])
        try await app.run()
    }
}

extension WebSocketListener {
    /// Whether the upgrade asks for the `parley.json` subprotocol (among others, in any order).
    static func wantsJSON(_ request: Request) -> Bool {
        request.headers[values: .secWebSocketProtocol].contains { value in
            value.split(separator: ",").contains { String($0.filter { !$0.isWhitespace }) == Parley_Frame.jsonSubprotocol }
        }
    }
}

/// A WebSocket upgrade's context, with the client's address (per-address limits).
struct GateWebSocketContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
    }
}

/// A plain HTTP request's context (health, long-poll), with the client's address.
struct GateHTTPContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
