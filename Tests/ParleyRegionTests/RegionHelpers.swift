import Foundation
import NIOCore
import NIOPosix
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
import ParleyTestSupport
import ParleyTools
import ParleyWire

/// A test user: a client SDK instance and the inbox its events go to.
struct TestUser {
    let id: String
    let client: ParleyClient
    let inbox: Inbox
    let reader: Task<Void, Never>

    func stop() async {
        await client.disconnect()
        reader.cancel()
    }
}

enum Transport { case tcp, webSocket, longPoll }

extension LocalRegion {
    func token(for user: String, lifetime: Double = 3600) async throws -> String {
        try await TokenAuthority(secret: tokenSecret).issue(userID: user, lifetime: lifetime)
    }

    func address(_ transport: Transport) -> GateAddress {
        switch transport {
        case .tcp: security.isTLS ? .tls(host: "127.0.0.1", port: tcpPort) : .tcp(host: "127.0.0.1", port: tcpPort)
        case .webSocket: .webSocket(url: webSocketURL)
        case .longPoll: .longPoll(url: longPollURL)
        }
    }

    func connect(
        _ user: String, via transport: Transport = .tcp, device: String = "d1", cursor: SyncCursor = SyncCursor(),
        requestTimeout: Duration = .seconds(10)
    ) async throws -> TestUser {
        var configuration = ParleyClient.Configuration(gates: [address(transport)], token: try await token(for: user), deviceID: device)
        configuration.requestTimeout = requestTimeout
        configuration.certificateAuthority = certificateAuthority
        let client = ParleyClient(configuration: configuration, cursor: cursor)
        let inbox = Inbox()
        let reader = Task { await inbox.collect(from: client) }
        try await client.connect()
        return TestUser(id: user, client: client, inbox: inbox, reader: reader)
    }
}

/// A hand-driven TCP connection to a gate, for feeding it bytes no SDK would send.
enum RawConnection {
    /// Connects, writes `writes` (raw bytes, framed or not), and returns every
    /// frame the gate sends until it closes the connection.
    static func framesUntilClosed(port: Int, after writes: [[UInt8]], timeout: Duration = .seconds(10)) async throws -> [Parley_Frame] {
        let channel = try await connect(port)
        return try await channel.executeThenClose { inbound, outbound in
            for bytes in writes { try await outbound.write(ByteBuffer(bytes: bytes)) }
            return try await withThrowingTaskGroup(of: [Parley_Frame]?.self) { group in
                group.addTask {
                    var frames: [Parley_Frame] = []
                    for try await payload in inbound { frames.append(try Parley_Frame.decode(payload)) }
                    return frames
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let frames = first else { throw TestSupportError("the gate did not close the connection within \(timeout)") }
                return frames
            }
        }
    }

    /// Connects, writes `bytes` in one write, and returns the frames the gate
    /// sends until `enough` holds for them (the connection stays open till then).
    static func frames(
        port: Int, after bytes: [UInt8], timeout: Duration = .seconds(60), until enough: @escaping @Sendable ([Parley_Frame]) -> Bool
    ) async throws -> [Parley_Frame] {
        let channel = try await connect(port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: bytes))
            return try await withThrowingTaskGroup(of: [Parley_Frame]?.self) { group in
                group.addTask {
                    var frames: [Parley_Frame] = []
                    for try await payload in inbound {
                        frames.append(try Parley_Frame.decode(payload))
                        if enough(frames) { return frames }
                    }
                    throw TestSupportError("the gate closed the connection after \(frames.count) frames")
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let frames = first else { throw TestSupportError("the gate did not send what was expected within \(timeout)") }
                return frames
            }
        }
    }

    /// A TCP connection to a gate whose inbound side yields one frame payload at a time.
    private static func connect(_ port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 24)))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    static func lengthPrefix(_ count: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(count).bigEndian) { Array($0) }
    }

    /// A sign-in as request 1, framed.
    static func signIn(token: String, device: String = "raw") -> [UInt8] {
        framed(.with {
            $0.requestID = 1
            $0.auth = .with { $0.token = token; $0.deviceID = device }
        })
    }

    static func framed(_ frame: Parley_Frame) -> [UInt8] {
        let payload = Array(frame.encoded().readableBytesView)
        return lengthPrefix(payload.count) + payload
    }
}

extension ReceivedEvent {
    func isMessage(_ body: String) -> Bool {
        if case .messagePosted(let posted) = event.kind { return posted.body == body }
        return false
    }
}

extension Array where Element == ReceivedEvent {
    func count(ofMessage body: String) -> Int { filter { $0.isMessage(body) }.count }

    /// The bodies a device built from docs/PROTOCOL.md alone shows, in the
    /// order received: a `hidden` copy is never shown; a shown message
    /// removes the messages it `replaces`. No table of client ids.
    var shownBodies: [String] {
        var shown: [(id: String, body: String)] = []
        for received in self {
            guard case .messagePosted(let posted) = received.event.kind, !posted.hidden else { continue }
            shown.removeAll { posted.replaces.contains($0.id) }
            shown.append((posted.messageID, posted.body))
        }
        return shown.map(\.body)
    }
}


extension LocalRegion {
    /// `origin:applied_seq,…` for every origin this region holds events of.
    var appliedVector: String {
        get throws {
            try postgres.psql("SELECT string_agg(origin || ':' || applied_seq, ',' ORDER BY origin) FROM origins WHERE applied_seq > 0")
        }
    }

    /// Every table replication writes, over every origin: one md5 per table.
    var stateDigest: String {
        get throws {
            try postgres.psql("""
                SELECT concat_ws(' ',
                  'events', md5((SELECT string_agg(concat_ws(',', origin, seq, hlc, kind, md5(payload)), ';' ORDER BY origin, seq) FROM events)),
                  'inbox', md5((SELECT string_agg(concat_ws(',', user_id, origin, user_seq, event_seq), ';' ORDER BY user_id, origin, user_seq) FROM inbox)),
                  'counters', md5((SELECT string_agg(concat_ws(',', user_id, origin, user_seq), ';' ORDER BY user_id, origin) FROM user_counters)),
                  'messages', md5((SELECT string_agg(concat_ws(',', origin, seq, conversation_id, hlc, sender, body, client_msg_id,
                                     recalled, edit_hlc, edit_origin), ';' ORDER BY origin, seq) FROM messages)),
                  'client_ids', md5((SELECT string_agg(concat_ws(',', sender, client_msg_id, origin, seq, hlc), ';' ORDER BY sender, client_msg_id) FROM client_messages)),
                  'conversations', md5((SELECT string_agg(concat_ws(',', conversation_id, is_group, name, owner), ';' ORDER BY conversation_id) FROM conversations)),
                  'members', md5((SELECT string_agg(concat_ws(',', conversation_id, user_id, present, hlc, origin), ';' ORDER BY conversation_id, user_id) FROM members)),
                  'markers', md5((SELECT string_agg(concat_ws(',', conversation_id, user_id, hlc, origin, seq), ';' ORDER BY conversation_id, user_id) FROM read_markers)),
                  'profiles', md5((SELECT string_agg(concat_ws(',', user_id, field, value, hlc, origin), ';' ORDER BY user_id, field) FROM profiles)),
                  'settings', md5((SELECT string_agg(concat_ws(',', user_id, key, value, hlc, origin), ';' ORDER BY user_id, key) FROM user_settings)),
                  'registers', md5((SELECT string_agg(concat_ws(',', conversation_id, subject, name, value, hlc, origin), ';'
                                     ORDER BY conversation_id, subject, name) FROM registers)),
                  'users', md5((SELECT string_agg(user_id, ';' ORDER BY user_id) FROM users)))
                """)
        }
    }
}
