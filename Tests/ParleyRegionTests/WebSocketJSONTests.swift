import Foundation
import HummingbirdWSClient
import Logging
import ParleyClient
import ParleyProbe
import ParleyTestSupport
import ParleyTools
import Testing

/// The `parley.json` WebSocket subprotocol (docs/PROTOCOL.md, "Transports"):
/// a browser's frames as protobuf's JSON mapping in text messages, against
/// a region really running, talking with an SDK client over TCP.
@Suite(.serialized, .timeLimit(.minutes(3))) struct WebSocketJSONTests {
    /// One JSON text message as a dictionary.
    private func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    @Test func aJSONClientSignsInChatsWithABinaryClientAndGetsItsErrorsInJSON() async throws {
        try await LocalRegion.with { region in
            // The upgrade names the subprotocol back (browsers close the connection otherwise).
            let upgrade = try await TCPProbe.exchange(
                region.file.gates[0].webSocket, timeout: .seconds(10),
                request: "GET /ws HTTP/1.1\r\nHost: gate\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    + "Sec-WebSocket-Protocol: chat, parley.json\r\n\r\n",
                complete: { $0.contains("\r\n\r\n") }
            )
            #expect(upgrade.hasPrefix("HTTP/1.1 101") && upgrade.lowercased().contains("sec-websocket-protocol: parley.json"), "\(upgrade)")

            let alice = try await region.connect("alice")
            let token = try await region.token(for: "webby")
            try await WebSocketClient.connect(
                url: region.webSocketURL, configuration: .init(additionalHeaders: [.secWebSocketProtocol: "parley.json"]),
                logger: Logger(label: "test")
            ) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                func next() async throws -> [String: Any] {
                    guard case .text(let text) = try await messages.next() else { return [:] }
                    return object(text)
                }
                try await outbound.write(.text(#"{"requestId": "1", "auth": {"token": "\#(token)", "deviceId": "browser"}}"#))
                let ok = try await next()
                #expect(ok["requestId"] as? String == "1" && (ok["authOk"] as? [String: Any])?["userId"] as? String == "webby", "\(ok)")

                // A message from the binary client arrives as a JSON push.
                _ = try await alice.client.send(to: .user("webby"), body: "hello browser")
                var push: [String: Any] = [:]
                while push["push"] == nil { push = try await next() }
                #expect("\(push)".contains("hello browser"), "\(push)")

                // A send in JSON is acknowledged in JSON and reaches the binary client.
                try await outbound.write(.text(#"{"requestId": "2", "send": {"clientMsgId": "j1", "toUser": "alice", "body": "hi from json"}}"#))
                var ack: [String: Any] = [:]
                while ack["requestId"] as? String != "2" { ack = try await next() }
                #expect(ack["sendAck"] != nil, "\(ack)")
                #expect(await alice.inbox.wait { $0.containsMessage("hi from json") })

                // Text that is no frame gets malformed_frame (1), in JSON, and the connection closes.
                try await outbound.write(.text("{not json"))
                var error: [String: Any] = [:]
                while error["error"] == nil { error = try await next() }
                #expect((error["error"] as? [String: Any])?["code"] as? Int == 1, "\(error)")
                #expect(try await messages.next() == nil, "the gate closed the connection")
            }
            await alice.stop()
        }
    }
}
