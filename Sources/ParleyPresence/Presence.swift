import ParleyRedis

/// Where a device is connected: the gate node (its delivery address) that
/// holds the socket.
public struct DeviceLocation: Hashable, Sendable {
    public let deviceID: String
    public let gateNode: String

    public init(deviceID: String, gateNode: String) {
        self.deviceID = deviceID
        self.gateNode = gateNode
    }
}

/// Presence in Redis: user → {device → gate node}, expiring unless heartbeats
/// refresh it.
///
/// Each user is one hash `presence:{user}`; a field is a device, its value
/// `gateNode|expiresAtMs`. Redis 7.0 cannot expire single hash fields, so each
/// value carries its own deadline and readers skip stale ones, while the whole
/// key expires after the TTL if no device refreshes it. Losing Redis loses no
/// message: presence only decides where live pushes go, and heartbeats rebuild it.
public struct Presence: Sendable {
    public let redis: RedisClient
    public let ttlMilliseconds: UInt64
    private let now: @Sendable () -> UInt64

    public init(redis: RedisClient, ttlMilliseconds: UInt64, now: @escaping @Sendable () -> UInt64) {
        self.redis = redis
        self.ttlMilliseconds = ttlMilliseconds
        self.now = now
    }

    static func key(_ userID: String) -> String { "presence:{\(userID)}" }

    /// Records (or refreshes) a device as connected to `gateNode`.
    public func register(userID: String, deviceID: String, gateNode: String) async throws {
        let expires = now() + ttlMilliseconds
        let key = Self.key(userID)
        let replies = try await redis.pipeline([
            ["HSET", key, deviceID, "\(gateNode)|\(expires)"],
            ["PEXPIRE", key, String(ttlMilliseconds)],
        ])
        if case .error(let message) = replies[0] { throw RedisError(message) }
    }

    /// Forgets a device, but only if `gateNode` still holds it: a device that
    /// already reconnected through another gate must stay reachable there.
    public func unregister(userID: String, deviceID: String, gateNode: String) async throws {
        let script = """
            local v = redis.call('HGET', KEYS[1], ARGV[1])
            if v and string.sub(v, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '|' then
              return redis.call('HDEL', KEYS[1], ARGV[1])
            end
            return 0
            """
        let reply = try await redis.send("EVAL", script, "1", Self.key(userID), deviceID, gateNode)
        if case .error(let message) = reply { throw RedisError(message) }
    }

    /// The live devices of each user, in one pipelined round trip.
    public func locate(_ userIDs: [String]) async throws -> [String: [DeviceLocation]] {
        guard !userIDs.isEmpty else { return [:] }
        let replies = try await redis.pipeline(userIDs.map { ["HGETALL", Self.key($0)] })
        let current = now()
        var result: [String: [DeviceLocation]] = [:]
        for (userID, reply) in zip(userIDs, replies) {
            guard let fields = reply.array else { continue }
            var devices: [DeviceLocation] = []
            var index = 0
            while index + 1 < fields.count {
                defer { index += 2 }
                guard let device = fields[index].string, let value = fields[index + 1].string,
                      let bar = value.lastIndex(of: "|"),
                      let expires = UInt64(value[value.index(after: bar)...]), expires > current
                else { continue }
                devices.append(DeviceLocation(deviceID: device, gateNode: String(value[..<bar])))
            }
            if !devices.isEmpty { result[userID] = devices }
        }
        return result
    }
}
