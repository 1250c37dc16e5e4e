import CHiredis
import NIOCore

/// hiredis's formatter and reader, wrapped. They never touch a socket here:
/// NIO does the I/O, hiredis only turns arguments into RESP and RESP into replies.
enum RESPCodec {
    /// Appends one command, formatted by `redisFormatCommandArgv`, to `buffer`.
    static func format(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        // One contiguous copy of every argument, with pointers into it: hiredis
        // takes argv/argvlen, so binary-safe arguments need no escaping.
        var flat: [UInt8] = []
        flat.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(flat.count)
            lengths.append(argument.count)
            flat.append(contentsOf: argument)
        }
        flat.append(0)  // never empty, so the base address exists
        flat.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            var argv: [UnsafePointer<CChar>?] = offsets.map {
                base.advanced(by: $0).assumingMemoryBound(to: CChar.self)
            }
            var target: UnsafeMutablePointer<CChar>?
            let length = redisFormatCommandArgv(&target, Int32(arguments.count), &argv, lengths)
            guard length > 0, let target else { return }
            buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(length)))
            redisFreeCommand(target)
        }
    }

    /// Converts a hiredis reply tree into a `RESPValue`. The caller frees the reply.
    static func value(of reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulk(bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var values: [RESPValue] = []
            values.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = r.element[index] { values.append(value(of: element)) }
            }
            return .array(values)
        default:
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

/// An incremental RESP parser over hiredis's `redisReader`.
///
/// Not thread-safe: owned by one channel handler on one event loop.
final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        reader = redisReaderCreate()
    }

    deinit {
        redisReaderFree(reader)
    }

    func feed(_ buffer: ByteBuffer) throws(RedisError) {
        let status = buffer.withUnsafeReadableBytes { raw in
            redisReaderFeed(reader, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        if status != REDIS_OK { throw RedisError("reader refused input") }
    }

    /// The next complete reply, or nil when more bytes are needed.
    func next() throws(RedisError) -> RESPValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
            throw RedisError("protocol error from server")
        }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return RESPCodec.value(of: reply.assumingMemoryBound(to: redisReply.self))
    }
}
