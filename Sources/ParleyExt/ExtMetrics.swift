import CoreMetrics
import ParleyCore
import ParleyMetrics
import ParleyRedis

/// What an ext instance counts (docs/OPERATIONS.md, "Metrics"), through swift-metrics.
struct ExtMetrics: Sendable {
    /// Follow-up work waiting in the region's stream for ext's consumer
    /// group: entries not yet handed out plus those handed out and not acknowledged.
    let queueDepth = Meter(label: "parley_ext_queue_depth")
    /// One follow-up job: who is owed a notification, stored as done.
    let jobLatency = CoreMetrics.Timer(label: "parley_ext_job_seconds")
    /// Offline-push notifications by how their call ended.
    let notifications = CounterFamily(
        "parley_ext_notifications_total", by: "outcome", values: ["delivered", "refused", "retried", "given_up", "online"]
    )
    /// Calls to the push gateway that failed: refused, timed out, or answered
    /// with a status other than 2xx.
    let webhookFailures = CoreMetrics.Counter(label: "parley_ext_webhook_failures_total")

    /// Reads the group's depth from Redis (`XINFO GROUPS`: lag + pending).
    func measureQueue(_ redis: RedisClient) async {
        guard let groups = try? await redis.send(["XINFO", "GROUPS", FollowUpWork.stream]).array else { return }
        for group in groups {
            guard let fields = group.array else { continue }
            var values: [String: RESPValue] = [:]
            for index in stride(from: 0, to: fields.count - 1, by: 2) {
                if let key = fields[index].string { values[key] = fields[index + 1] }
            }
            guard values["name"]?.string == FollowUpWork.group else { continue }
            queueDepth.set((values["lag"]?.integer ?? 0) + (values["pending"]?.integer ?? 0))
        }
    }
}
