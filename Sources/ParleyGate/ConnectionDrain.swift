import ServiceLifecycle

/// The first thing a stopping gate does: tells every device to go elsewhere,
/// so the listeners and logic links behind it can finish.
struct ConnectionDrain: Service {
    let registry: ConnectionRegistry

    func run() async throws {
        // Cancellation (not a graceful stop) ends the gate without the courtesy.
        try await gracefulShutdown()
        registry.drain()
    }
}
