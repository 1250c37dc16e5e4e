import NIOCore
import NIOEmbedded
import NIOWebSocket
import ParleyProto
import ParleyWire
import SwiftProtobuf

/// What the fuzz targets (Fuzz/, run by ops/fuzz) do with one input, here so
/// the unit tests replay the committed corpus through exactly the same code
/// (docs/ARCHITECTURE.md, "Fuzzing"). Each returns what the gate would have
/// made of the bytes; a broken invariant stops the process, which libFuzzer
/// reports as a crash.
public enum FuzzTargets {
    /// The gate's frame limit (`parley gate --max-frame-size` default).
    public static let maxFrameSize = 64 * 1024

    /// What a sequence of bytes decoded to: the frames, then why decoding
    /// stopped (nil: the bytes ran out, possibly mid-frame).
    public struct Outcome: Sendable {
        public var frames: [Parley_Frame] = []
        public var stoppedBy: FrameError?
    }

    /// Bytes as the gate's TCP port (or a long-poll body) reads them: split
    /// by `FrameDecoder`, each frame decoded; the first refused frame ends
    /// the connection, as it does at the gate.
    public static func frameStream(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var buffer = ByteBuffer(bytes: bytes)
        var outcome = Outcome()
        do {
            while let payload = try FrameDecoder.nextFrame(from: &buffer, maxFrameSize: maxFrameSize) {
                precondition(payload.readableBytes <= maxFrameSize, "a frame over the limit was let through")
                outcome.frames.append(try Parley_Frame.decode(payload))
            }
        } catch {
            outcome.stoppedBy = error
        }
        return outcome
    }

    /// Bytes as one frame's payload. A frame that decodes must encode and
    /// decode to itself, and its JSON mapping must parse back.
    public static func frameMessage(_ bytes: UnsafeRawBufferPointer) -> Result<Parley_Frame, FrameError> {
        let result = Result { () throws(FrameError) in try Parley_Frame.decode(ByteBuffer(bytes: bytes)) }
        if case .success(let frame) = result {
            precondition((try? Parley_Frame.decode(frame.encoded())) == frame, "a frame did not survive encoding and decoding again")
            if let json = try? frame.jsonString() {
                precondition((try? Parley_Frame(jsonString: json)) != nil, "a decoded frame's JSON mapping does not parse back")
            }
        }
        return result
    }

    /// Bytes as one text message of the `parley.json` WebSocket subprotocol:
    /// JSON that is a `Frame` becomes the binary frame the gate serves, which
    /// must decode (or be refused as a body this build does not know);
    /// anything else is `malformed`.
    public static func frameJSON(_ bytes: UnsafeRawBufferPointer) -> Result<Parley_Frame, FrameError> {
        let text = String(decoding: bytes, as: UTF8.self)
        let result = Result { () throws(FrameError) in try Parley_Frame.decode(Parley_Frame.encoded(fromJSON: text)) }
        if case .failure(let error) = result {
            precondition(error == .malformed || error == .unknownType, "JSON ended in \(error)")
        }
        return result
    }

    /// Bytes as a client writes them to the gate's WebSocket after the
    /// upgrade: WebSocket frames (the decoder reads messages up to twice the
    /// limit, so an oversized one still gets its error code), reassembled,
    /// then the gate's rule for a message (binary, at most the limit) and the
    /// `Frame` inside it.
    public static func webSocket(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var outcome = Outcome()
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize * 2)))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch {
            // A WebSocket protocol error: the connection closes (the gate's WebSocket layer answers it).
            outcome.stoppedBy = .malformed
        }
        var message = ByteBuffer()
        var binary = false
        while let frame = try? channel.readInbound(as: WebSocketFrame.self) {
            var payload = frame.unmaskedData
            switch frame.opcode {
            case .binary: (message, binary) = (payload, true)
            case .text: (message, binary) = (payload, false)
            case .continuation: message.writeBuffer(&payload)
            default: continue
            }
            guard frame.fin else { continue }
            guard binary else { outcome.stoppedBy = .malformed; break }
            guard message.readableBytes <= maxFrameSize else {
                outcome.stoppedBy = .tooLarge(length: message.readableBytes, limit: maxFrameSize)
                break
            }
            do {
                outcome.frames.append(try Parley_Frame.decode(message))
            } catch {
                outcome.stoppedBy = error
                break
            }
            message.clear()
        }
        return outcome
    }
}
