import NIOCore
import NIOEmbedded
import ParleyProto
import ParleyWire
import Testing

@Suite struct FrameDecoderTests {
    private func framed(_ payloads: [[UInt8]]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for payload in payloads {
            buffer.writeInteger(UInt32(payload.count))
            buffer.writeBytes(payload)
        }
        return buffer
    }

    @Test func decodesTheSameFramesFedWholeOrOneByteAtATime() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300)]
        let input = framed(payloads)
        for chunk in [input.readableBytes, 1] {
            var buffer = ByteBuffer()
            var decoded: [[UInt8]] = []
            var offset = 0
            while offset < input.readableBytes {
                let length = min(chunk, input.readableBytes - offset)
                buffer.writeImmutableBuffer(input.getSlice(at: input.readerIndex + offset, length: length)!)
                offset += length
                while let frame = try FrameDecoder.nextFrame(from: &buffer, maxFrameSize: 1024) {
                    decoded.append(Array(frame.readableBytesView))
                }
            }
            #expect(decoded == payloads, "chunk size \(chunk)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func theChannelDecoderEmitsFramesAndRefusesOversizedOnes() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 8)))
        try channel.writeInbound(framed([[9, 9]]))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(bytes: [9, 9]))
        #expect(throws: FrameError.tooLarge(length: 100, limit: 8)) {
            try channel.writeInbound(framed([Array(repeating: 1, count: 100)]))
        }
        _ = try? channel.finish()
    }

    @Test func refusesAnAnnouncedLengthAboveTheLimitBeforeBufferingIt() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1_000_000))
        buffer.writeBytes([1, 2])
        #expect(throws: FrameError.tooLarge(length: 1_000_000, limit: 1024)) {
            _ = try FrameDecoder.nextFrame(from: &buffer, maxFrameSize: 1024)
        }
    }

    @Test func waitsForTheWholeFrame() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(4))
        buffer.writeBytes([1, 2])
        #expect(try FrameDecoder.nextFrame(from: &buffer, maxFrameSize: 1024) == nil)
        buffer.writeBytes([3, 4])
        #expect(try FrameDecoder.nextFrame(from: &buffer, maxFrameSize: 1024) == ByteBuffer(bytes: [1, 2, 3, 4]))
    }

    @Test func protobufGarbageIsMalformedAndAnEmptyBodyIsAnUnknownType() throws {
        #expect(throws: FrameError.malformed) { _ = try Parley_Frame.decode(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])) }
        #expect(throws: FrameError.unknownType) { _ = try Parley_Frame.decode(ByteBuffer()) }
        // Field 99 is a body type this build does not know.
        #expect(throws: FrameError.unknownType) { _ = try Parley_Frame.decode(ByteBuffer(bytes: [0x9A, 0x06, 0x00])) }
        let frame = Parley_Frame.with {
            $0.requestID = 9
            $0.heartbeat = .with { $0.clientTimeMs = 5 }
        }
        #expect(try Parley_Frame.decode(frame.encoded()) == frame)
    }

    @Test func framingErrorsMapToTheirDocumentedCodes() {
        #expect(FrameError.malformed.clientError.code.rawValue == 1)
        #expect(FrameError.tooLarge(length: 9, limit: 1).clientError.code.rawValue == 2)
        #expect(FrameError.unknownType.clientError.code.rawValue == 3)
    }
}
