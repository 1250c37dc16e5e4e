import NIOCore

/// Splits a TCP byte stream into frames: a 4-byte big-endian length, then
/// that many bytes of an encoded `Parley_Frame`.
///
/// A length above `maxFrameSize` is refused before any of the payload is
/// buffered, so a peer cannot make the gate allocate what it announces.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maxFrameSize: Int

    public init(maxFrameSize: Int) { self.maxFrameSize = maxFrameSize }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(from: &buffer, maxFrameSize: maxFrameSize) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// The next complete frame in `buffer`, or nil when more bytes are needed.
    public static func nextFrame(from buffer: inout ByteBuffer, maxFrameSize: Int) throws(FrameError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length <= maxFrameSize else { throw .tooLarge(length: Int(length), limit: maxFrameSize) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }
}

/// Prefixes each outgoing frame with its length.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ByteBuffer

    public init() {}

    public func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        Self.append(data, to: &out)
    }

    /// Writes one frame payload with its length prefix (TCP framing, and long-poll bodies).
    public static func append(_ payload: ByteBuffer, to out: inout ByteBuffer) {
        out.writeInteger(UInt32(payload.readableBytes))
        out.writeImmutableBuffer(payload)
    }
}

/// Why bytes from a peer are not a frame.
public enum FrameError: Error, Sendable, Equatable {
    case tooLarge(length: Int, limit: Int)
    case malformed
    case unknownType
}
