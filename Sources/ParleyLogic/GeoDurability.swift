import GRPCCore
import Logging
import ParleyCore
import ParleyProto
import ParleyRPC

/// Confirms that other regions hold an event before a `geo` send is
/// acknowledged: asks every peer's sync at once and returns as soon as
/// `quorum` of them have stored it (directly or through a third region).
struct GeoDurability: Sendable {
    let region: String
    /// Peer region → its sync address.
    let peers: [String: String]
    let quorum: Int
    let timeout: Duration
    let pool: RPCClientPool
    let logger: Logger

    func confirm(_ event: Parley_EventId) async throws {
        let request = Parley_AwaitStoredRequest.with {
            $0.event = event
            $0.timeoutMs = UInt32(timeout / .milliseconds(1))
        }
        let pool = self.pool
        let logger = self.logger
        // The peer answers "not stored" at the deadline; the call's own
        // deadline, a little later, covers a peer that never answers. The call
        // waits for a connection rather than failing at once: a peer that is
        // restarting may still confirm in time.
        let options = CallOptions.waitingForReady(timeout: timeout + .milliseconds(500))
        let confirmed = await withTaskGroup(of: Bool.self) { group in
            for (peer, address) in peers {
                group.addTask {
                    do {
                        let sync = Parley_Sync.Client(wrapping: try pool.client(for: address))
                        return try await sync.awaitStored(request, options: options).stored
                    } catch {
                        if !Task.isCancelled {
                            logger.warning("peer cannot confirm a geo send", metadata: ["peer": "\(peer)", "error": "\(error)"])
                        }
                        return false
                    }
                }
            }
            var confirmed = 0
            for await stored in group where stored {
                confirmed += 1
                if confirmed >= quorum { group.cancelAll() }
            }
            return confirmed
        }
        guard confirmed >= quorum else {
            throw ClientError(
                .durabilityTimeout,
                "stored in \(region) as \(event.origin)-\(event.seq), but \(confirmed) of \(peers.count) other regions "
                    + "confirmed it within \(timeout) (\(quorum) needed); it replicates once they are reachable"
            )
        }
    }
}
