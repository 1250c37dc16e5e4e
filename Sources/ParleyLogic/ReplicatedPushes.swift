import Logging
import ParleyRPC
import ParleyStore
import ServiceLifecycle

/// Pushes events that `parley sync` applied here to this region's online
/// devices, as the dispatcher does for local commits. Every logic instance
/// listens, so a device may get such a push twice; its cursor drops the copy.
struct ReplicatedPushes: Service {
    let store: RegionStore
    let dispatcher: PushDispatcher
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await reconnecting("replication notifications", logger: logger) {
                try await store.listenForReplicated { events in dispatcher.enqueue(events) }
            }
        }
    }
}
