import NIOCore
import ParleyProto
import SwiftProtobuf

/// The WebSocket subprotocol `parley.json` (docs/PROTOCOL.md, "Transports"):
/// the same frames in protobuf's canonical JSON mapping, one per text
/// message, for clients such as browsers that have JSON but no protobuf.
extension Parley_Frame {
    /// The subprotocol name a client asks for in `Sec-WebSocket-Protocol`.
    public static let jsonSubprotocol = "parley.json"

    /// A text message's frame, as the binary encoding the gate serves: a
    /// body this build does not know (a newer client) decodes to an empty
    /// body, as it does in binary; text that is not a `Frame` in JSON is
    /// `malformed`.
    public static func encoded(fromJSON text: String) throws(FrameError) -> ByteBuffer {
        do {
            var options = JSONDecodingOptions()
            options.ignoreUnknownFields = true
            return try Parley_Frame(jsonString: text, options: options).encoded()
        } catch {
            throw .malformed
        }
    }

    /// An encoded frame (as the gate writes it) in the JSON mapping.
    public static func json(fromEncoded payload: ByteBuffer) throws -> String {
        try Parley_Frame(serializedBytes: Array(payload.readableBytesView)).jsonString()
    }
}
