import NIOCore
import ParleyCore
import ParleyProto
import SwiftProtobuf

extension Parley_Frame {
    /// Decodes one frame's payload. A frame whose body is absent or of a type
    /// this build does not know is `unknownType`, not malformed: the peer may
    /// be newer than us.
    public static func decode(_ payload: ByteBuffer) throws(FrameError) -> Parley_Frame {
        let frame: Parley_Frame
        do {
            frame = try Parley_Frame(serializedBytes: Array(payload.readableBytesView))
        } catch {
            throw .malformed
        }
        guard frame.body != nil else { throw .unknownType }
        return frame
    }

    /// A request that logic commits as a change (RequestHandler's plan): a
    /// connection's consecutive changes are pipelined and committed together;
    /// anything else waits for the requests before it to be answered.
    public var isChange: Bool {
        switch body {
        case .send, .markRead, .createGroup, .edit, .recall, .addMember, .removeMember, .setProfile, .registerPush, .mute,
            .friendRequest, .friendRespond, .friendRemove, .block, .setRemark, .updateGroup, .updateMember, .joinGroup: true
        default: false
        }
    }

    /// The frame's encoding, ready for a TCP length prefix or a WebSocket message.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        // Encoding a message built in this process cannot fail.
        let bytes: [UInt8] = (try? serializedBytes()) ?? []
        return allocator.buffer(bytes: bytes)
    }

    public static func error(_ code: ClientErrorCode, _ message: String, requestID: UInt64 = 0) -> Parley_Frame {
        .with {
            $0.requestID = requestID
            $0.error = .with {
                $0.code = code.rawValue
                $0.message = message
            }
        }
    }

    public static func error(_ error: ClientError, requestID: UInt64 = 0) -> Parley_Frame {
        var frame = Parley_Frame.error(error.code, error.message, requestID: requestID)
        if let wait = error.retryAfterMilliseconds { frame.error.retryAfterMs = wait }
        return frame
    }
}

extension FrameError: ClientErrorConvertible {
    /// The code a peer receives for this framing failure.
    public var clientError: ClientError {
        switch self {
        case .tooLarge(let length, let limit):
            ClientError(.frameTooLarge, "frame of \(length) bytes exceeds the limit of \(limit)")
        case .malformed:
            ClientError(.malformedFrame, "frame is not a valid protobuf Frame")
        case .unknownType:
            ClientError(.unknownFrameType, "frame carries no known body type")
        }
    }
}
