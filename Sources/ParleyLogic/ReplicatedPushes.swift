import Logging
import ParleyRPC
import ParleyStore
import ServiceLifecycle

/// Pushes events that `parley sync` applied here to this region's online
/// devices, as the dispatcher does for local commits. One logic instance per
/// region does it (the holder of an advisory lock on its listening
/// connection); the others stand by and take over within a second of its
/// connection closing. A push missed meanwhile shows the device a gap at the
/// next one, and it pulls. The same instance pushes the typing notices peer
/// regions relay here.
struct ReplicatedPushes: Service {
    let store: RegionStore
    let dispatcher: PushDispatcher
    let typing: TypingRelay
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await reconnecting("replication notifications", logger: logger) {
                try await store.listenForReplicated(asLeader: true, typing: { notice in await typing.deliverRelayed(notice) }) { events in
                    dispatcher.enqueue(events)
                }
            }
        }
    }
}
