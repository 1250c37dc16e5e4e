import Logging
import ParleyCore
import ParleyPresence
import ParleyStore
import ServiceLifecycle

/// Sends the outbox's due notifications to the push gateway. A call that
/// fails is retried with exponential backoff and jitter; one the gateway
/// refuses for good (a 4xx other than 408 and 429), or one still failing
/// after `maxAttempts`, is dropped and logged. Calls run side by side with
/// a deadline each, so a gateway that hangs never holds up the job stream
/// or the other notifications. A device that came back online while its
/// notification waited gets none: it has the messages.
struct PushSender: Service {
    let configuration: ExtConfiguration
    let gateway: PushGateway
    let store: RegionStore
    let presence: Presence
    let metrics: ExtMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                var taken: [OutboxNotification] = []
                do {
                    taken = try await store.takeDueNotifications(limit: configuration.maxConcurrentPushes, lease: configuration.pushTimeout * 2)
                    if !taken.isEmpty { try await send(taken) }
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("push outbox round failed", metadata: ["error": "\(error)"])
                }
                if taken.count < configuration.maxConcurrentPushes { try? await Task.sleep(for: configuration.outboxInterval) }
            }
        }
    }

    private func send(_ notifications: [OutboxNotification]) async throws {
        let online = try await presence.locate(Array(Set(notifications.map(\.userID)))).mapValues { Set($0.map(\.deviceID)) }
        await withDiscardingTaskGroup { group in
            for notification in notifications {
                group.addTask {
                    do {
                        try await deliver(notification, online: online[notification.userID]?.contains(notification.deviceID) == true)
                    } catch {
                        logger.warning("push outbox update failed", metadata: ["id": "\(notification.id)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    private func deliver(_ notification: OutboxNotification, online: Bool) async throws {
        if online {
            try await store.forgetNotification(id: notification.id)
            metrics.notifications.increment("online")
            return
        }
        let body = PushGateway.Notification(
            notificationID: "\(configuration.region)-\(notification.id)", region: configuration.region, userID: notification.userID,
            deviceID: notification.deviceID, token: notification.token, messages: notification.messages,
            latest: .init(
                messageID: notification.latestMessageID, conversationID: notification.latestConversationID,
                sender: notification.latestSender, preview: notification.latestPreview
            ),
            attempt: notification.attempts + 1
        )
        let outcome: String
        do {
            let status = try await gateway.send(body, timeout: configuration.pushTimeout)
            if (200..<300).contains(status) {
                try await store.forgetNotification(id: notification.id)
                metrics.notifications.increment("delivered")
                logger.info("push notification delivered", metadata: [
                    "notification": "\(body.notificationID)", "user": "\(body.userID)", "device": "\(body.deviceID)",
                    "messages": "\(body.messages)",
                ])
                return
            }
            metrics.webhookFailures.increment()
            if (400..<500).contains(status) && status != 408 && status != 429 {
                try await store.forgetNotification(id: notification.id)
                metrics.notifications.increment("refused")
                logger.error("push gateway refused a notification; dropped", metadata: [
                    "notification": "\(body.notificationID)", "status": "\(status)",
                ])
                return
            }
            outcome = "status \(status)"
        } catch {
            // Refused, reset, timed out: the gateway may come back.
            metrics.webhookFailures.increment()
            outcome = "\(error)"
        }
        if body.attempt >= configuration.maxAttempts {
            try await store.forgetNotification(id: notification.id)
            metrics.notifications.increment("given_up")
            logger.error("push notification given up", metadata: [
                "notification": "\(body.notificationID)", "attempts": "\(body.attempt)", "last": "\(outcome)",
            ])
            return
        }
        let wait = configuration.pushBackoff.delay(afterFailures: notification.attempts)
        try await store.retryNotification(id: notification.id, after: wait)
        metrics.notifications.increment("retried")
        logger.warning("push gateway call failed; retrying", metadata: [
            "notification": "\(body.notificationID)", "attempt": "\(body.attempt)", "error": "\(outcome)", "retry_in": "\(wait)",
        ])
    }
}
