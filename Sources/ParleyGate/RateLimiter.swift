import Logging
import ParleyCore
import ParleyRedis
import Synchronization

/// The request limits of a region's gates (docs/ARCHITECTURE.md, "Rate
/// limits"): per device and per user on every request after sign-in, per
/// client address on sign-ins. The buckets live in the region's Redis, so
/// a device that reconnects to another gate, or a user on several gates,
/// draws on the same tokens; each gate leases a few at a time (`LeaseLedger`).
public struct GateLimits: Sendable {
    public var perDevice = RateLimit(perSecond: 50, burst: 200)
    public var perUser = RateLimit(perSecond: 100, burst: 400)
    public var signInsPerAddress = RateLimit(perSecond: 20, burst: 200)
    /// Connections one client address may hold open on one gate (0: no cap).
    public var connectionsPerAddress = 1_000

    public init() {}
}

/// Takes tokens for requests from the region's shared buckets.
///
/// When Redis cannot answer, requests pass: limits protect the region from
/// abuse, and refusing everyone because the limiter's store is down would be
/// the outage they exist to prevent. The failure is logged.
final class RateLimiter: Sendable {
    private let redis: RedisClient
    private let ledger = Mutex(LeaseLedger())
    /// One lease in flight per bucket: the requests that find no token while
    /// it runs wait for it instead of each draining the shared bucket.
    private let leasesInFlight = Mutex<[String: Task<Bool, Never>]>([:])
    /// The bucket script's SHA-1 once Redis has it (`SCRIPT LOAD`).
    private let scriptSHA = Mutex<String?>(nil)
    private let lastFailureLogged = Atomic<UInt64>(0)
    private let logger: Logger

    init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    /// Spends one token from each bucket, in order: nil when every one had
    /// a token, else how long until the request may pass (ms): the longest
    /// wait known of any of the buckets, so a retry after it is not refused
    /// by another bucket it did not reach.
    func admit(_ buckets: [(key: String, limit: RateLimit)]) async -> UInt64? {
        for (key, limit) in buckets where !limit.isUnlimited {
            var wait: UInt64?
            taking: while true {
                switch ledger.withLock({ $0.take(key, now: WallClock.milliseconds()) }) {
                case .granted: break taking
                case .refused(let retryAfter):
                    wait = retryAfter
                    break taking
                case .askForLease:
                    // Redis did not answer: the request passes.
                    guard await leased(key, limit) else { break taking }
                }
            }
            guard let wait else { continue }
            let later = WallClock.milliseconds()
            return ledger.withLock { ledger in buckets.map { ledger.refusal($0.key, now: later) }.reduce(wait, max) }
        }
        return nil
    }

    /// Waits for the lease in flight for `key`, or runs one, which puts what
    /// the shared bucket granted (or its refusal) in the ledger; false when
    /// Redis did not answer.
    private func leased(_ key: String, _ limit: RateLimit) async -> Bool {
        let task = leasesInFlight.withLock { inFlight -> Task<Bool, Never> in
            if let running = inFlight[key] { return running }
            let task = Task {
                defer { _ = self.leasesInFlight.withLock { $0.removeValue(forKey: key) } }
                guard let (granted, retryAfter) = await self.lease(key, limit) else { return false }
                self.ledger.withLock { $0.leased(key, granted: granted, retryAfterMilliseconds: retryAfter, now: WallClock.milliseconds()) }
                return true
            }
            inFlight[key] = task
            return task
        }
        return await task.value
    }

    /// Up to `limit.leaseSize` tokens from the shared bucket, and when it has
    /// one again if it had none; nil when Redis did not answer.
    private func lease(_ key: String, _ limit: RateLimit) async -> (granted: Int, retryAfter: UInt64)? {
        let arguments = ["1", "parley:rate:\(key)", "\(limit.perSecond)", "\(limit.burst)", "\(limit.leaseSize)"]
        do {
            var reply: RESPValue
            if let sha = scriptSHA.withLock({ $0 }) {
                reply = try await redis.send(["EVALSHA", sha] + arguments)
            } else {
                reply = .error("NOSCRIPT")
            }
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                let sha = try await redis.send("SCRIPT", "LOAD", Self.bucketScript)
                guard let sha = sha.string else { throw RedisError("SCRIPT LOAD answered \(sha)") }
                scriptSHA.withLock { $0 = sha }
                reply = try await redis.send(["EVALSHA", sha] + arguments)
            }
            guard let values = reply.array, values.count == 2, let granted = values[0].integer, let retryAfter = values[1].integer else {
                throw RedisError("the bucket script answered \(reply)")
            }
            return (Int(granted), UInt64(max(0, retryAfter)))
        } catch {
            let now = WallClock.milliseconds()
            if now > lastFailureLogged.load(ordering: .relaxed) + 10_000 {
                lastFailureLogged.store(now, ordering: .relaxed)
                logger.warning("rate limits not enforced: Redis did not answer", metadata: ["error": "\(error)"])
            }
            return nil
        }
    }

    /// A token bucket in one Redis hash, refilled from Redis's own clock (so
    /// gates whose clocks differ agree): takes up to ARGV[3] tokens and
    /// answers {granted, milliseconds until a token is there when none was}.
    /// The key expires once a full bucket would have refilled.
    static let bucketScript = """
        local rate = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local want = tonumber(ARGV[3])
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
        local tokens = tonumber(state[1])
        local at = tonumber(state[2])
        if tokens == nil or at == nil then
          tokens = burst
          at = now
        end
        tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
        local granted = math.min(want, math.floor(tokens))
        tokens = tokens - granted
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
        redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
        local retry = 0
        if granted == 0 then retry = math.ceil((1 - tokens) * 1000 / rate) end
        return {granted, retry}
        """
}
