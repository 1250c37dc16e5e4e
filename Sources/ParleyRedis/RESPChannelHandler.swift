import NIOCore

/// One Redis command on its way out, with the promise its reply fulfils.
struct RedisCommand {
    var arguments: [[UInt8]]
    var promise: EventLoopPromise<RESPValue>
}

/// Pipelines commands over one connection: replies arrive in the order the
/// commands were written, so pending promises form a FIFO queue.
final class RESPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisCommand
    typealias OutboundOut = ByteBuffer

    private let reader = RESPReader()
    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPCodec.format(command.arguments, into: &buffer)
        pending.append(command.promise)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try reader.feed(unwrapInboundIn(data))
            while let value = try reader.next() {
                guard let promise = pending.popFirst() else {
                    throw RedisError("reply without a command")
                }
                promise.succeed(value)
            }
        } catch {
            failAll(error)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError("connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        while let promise = pending.popFirst() { promise.fail(error) }
    }
}
