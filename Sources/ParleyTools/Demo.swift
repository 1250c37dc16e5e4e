import Foundation
import Logging
import ParleyAuth
import ParleyClient
import ParleyCore
import ParleyProto
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The scripted conversation `parley demo` runs against a live region: 1:1 and
/// group chat over TCP and WebSocket, a user who goes offline and catches up,
/// a user over HTTP long-poll, and a notice from a business system.
/// Every step is checked; the demo fails loudly if a message is lost or doubled.
public struct Demo: Sendable {
    public let tcp: GateAddress
    public let webSocket: GateAddress
    public let tokenSecret: String
    /// A gate of another region, for the cross-region part (nil: skip it).
    public let remote: (region: String, gate: GateAddress)?
    /// The gate's long-poll URL (nil: skip that part).
    public var longPoll: GateAddress?
    /// The region's platform API (`http://host:port/v1`) and a service's token (nil: skip notices).
    public var platform: (url: String, service: String, token: String)?
    /// The authority TLS gates' certificates chain to (nil: the system's).
    public var certificateAuthority: String?
    public let say: @Sendable (String) -> Void

    public init(
        tcp: GateAddress, webSocket: GateAddress, tokenSecret: String,
        remote: (region: String, gate: GateAddress)? = nil, say: @escaping @Sendable (String) -> Void
    ) {
        self.tcp = tcp
        self.webSocket = webSocket
        self.tokenSecret = tokenSecret
        self.remote = remote
        self.say = say
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private func check(_ condition: Bool, _ what: String) throws {
        guard condition else { throw Failure(description: "demo failed: \(what)") }
        say("  ✓ \(what)")
    }

    public func run() async throws {
        let authority = try await TokenAuthority(secret: tokenSecret)
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        func user(_ name: String) -> String { "\(name)_\(run)" }
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"))

        func connect(_ userID: String, via gate: GateAddress, cursor: SyncCursor = SyncCursor()) async throws -> (ParleyClient, Inbox, Task<Void, Never>) {
            let token = try await authority.issue(userID: userID, lifetime: 3600)
            var configuration = ParleyClient.Configuration(gates: [gate], token: token, deviceID: "demo")
            configuration.certificateAuthority = certificateAuthority
            let client = ParleyClient(configuration: configuration, cursor: cursor)
            let inbox = Inbox()
            let reader = Task { await inbox.collect(from: client) }
            try await client.connect()
            return (client, inbox, reader)
        }

        say("1. alice (TCP), bob (WebSocket) and carol (TCP) sign in")
        let (aliceClient, aliceInbox, _) = try await connect(alice, via: tcp)
        let (bobClient, bobInbox, _) = try await connect(bob, via: webSocket)
        let (carolClient, carolFirstInbox, carolReader) = try await connect(carol, via: tcp)

        say("2. alice and bob chat 1:1")
        let hi = try await aliceClient.send(to: .user(bob), body: "Hi Bob, lunch today?")
        say("  alice → bob: \"Hi Bob, lunch today?\"  ack \(hi.messageID) at (\(hi.event.origin), \(hi.event.seq))")
        try check(await bobInbox.wait { $0.containsMessage("Hi Bob, lunch today?") }, "bob received alice's message live")
        _ = try await bobClient.send(to: .user(alice), body: "Sure, 12:30!")
        try check(await aliceInbox.wait { $0.containsMessage("Sure, 12:30!") }, "alice received bob's reply")

        say("3. alice creates a group with bob and carol")
        let group = try await aliceClient.createGroup(name: "weekend", members: [bob, carol])
        let hike = try await aliceClient.send(to: .group(group.groupID), body: "Hike on Saturday?")
        try check(await bobInbox.wait { $0.containsMessage("Hike on Saturday?") }, "bob received the group message")
        try check(await carolFirstInbox.wait { $0.containsMessage("Hike on Saturday?") }, "carol received the group message")

        say("4. carol goes offline; the others keep talking")
        let carolCursor = await carolClient.cursor
        await carolClient.disconnect()
        carolReader.cancel()
        _ = try await aliceClient.send(to: .group(group.groupID), body: "Meet at 9 at the station")
        _ = try await bobClient.send(to: .group(group.groupID), body: "I'll bring snacks")
        _ = try await bobClient.send(to: .user(carol), body: "Carol, are you coming?")

        say("5. carol comes back and catches up from her cursor \(carolCursor.vector)")
        let (carolAgain, carolInbox, _) = try await connect(carol, via: tcp, cursor: carolCursor)
        let missed = ["Meet at 9 at the station", "I'll bring snacks", "Carol, are you coming?"]
        try check(await carolInbox.wait { events in missed.allSatisfy { events.containsMessage($0) } },
                  "carol received the 3 messages she missed")
        let bodies = await carolInbox.messageBodies
        try check(bodies.count == Set(bodies).count && bodies.count == 3, "nothing twice: carol got exactly \(bodies.map { "\"\($0)\"" }.joined(separator: ", "))")

        say("6. read markers and unread counts")
        let unreadBefore = try await carolAgain.unreadCounts()
        say("  carol's unread counts: \(unreadBefore.sorted { $0.key < $1.key }.map { "\($0.key) → \($0.value)" }.joined(separator: ", "))")
        if let last = await carolInbox.received.last(where: {
            if case .messagePosted(let p) = $0.event.kind { return ConversationID.isGroup(p.conversationID) } else { return false }
        }), case .messagePosted(let posted) = last.event.kind {
            _ = try await carolAgain.markRead(conversationID: posted.conversationID, messageID: posted.messageID)
            let unreadAfter = try await carolAgain.unreadCounts()
            try check((unreadAfter[posted.conversationID] ?? 0) == 0, "carol read the group: its unread count is 0")
        }
        let history = try await aliceClient.history(conversationID: ConversationID.group(group.groupID), limit: 10)
        say("  group history, newest first: \(history.messages.map { "\"\($0.messagePosted.body)\"" }.joined(separator: ", "))")
        try check(history.messages.count == 3, "the group's history holds its 3 messages")

        if let remote {
            say("7. dave signs in at region \(remote.region); alice (in this region) writes to him")
            let (daveClient, daveInbox, _) = try await connect(user("dave"), via: remote.gate)
            let started = ContinuousClock.now
            // alice's region learns of dave once his sign-in has replicated.
            var sent: Parley_SendAck?
            while sent == nil, ContinuousClock.now - started < .seconds(20) {
                do {
                    sent = try await aliceClient.send(to: .user(user("dave")), body: "Welcome from the other region, Dave!")
                } catch let error as ClientError where error.code == .unknownUser {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            try check(sent != nil, "dave's sign-in replicated to alice's region")
            var arrived = false
            while !arrived, ContinuousClock.now - started < .seconds(20) {
                try await daveClient.sync()
                arrived = await daveInbox.wait(timeout: .milliseconds(200)) { $0.containsMessage("Welcome from the other region, Dave!") }
            }
            try check(arrived, "alice's message reached dave in \(remote.region) (\(ContinuousClock.now - started) after his sign-in)")
            await daveClient.disconnect()
        }

        if let longPoll {
            say("8. erin signs in over HTTP long-poll; bob writes to her")
            let erin = user("erin")
            let (erinClient, erinInbox, _) = try await connect(erin, via: longPoll)
            _ = try await bobClient.send(to: .user(erin), body: "Hi Erin, this reached you over long-poll")
            try check(
                await erinInbox.wait(timeout: .seconds(10)) { $0.containsMessage("Hi Erin, this reached you over long-poll") },
                "bob's message reached erin's long-poll session"
            )
            if let platform {
                say("9. the \(platform.service) system sends erin a notice through the platform API")
                let status = try await Self.postNotice(platform, id: "demo-\(run)", to: erin, text: "Your order #\(run) has shipped.")
                say("  POST \(platform.url)/notices → \(status)")
                try check(status.hasPrefix("200") && status.contains("posted"), "the notice was posted")
                try check(
                    await erinInbox.wait(timeout: .seconds(10)) { events in
                        events.contains { event in
                            guard case .messagePosted(let posted) = event.event.kind else { return false }
                            return posted.sender == "~\(platform.service)" && posted.body == "Your order #\(run) has shipped."
                        }
                    },
                    "erin got it as a message from ~\(platform.service)"
                )
            }
            await erinClient.disconnect()
        }

        say("10. friends, a group admin, a reply with a photo, and alice's conversation list")
        _ = try await aliceClient.requestFriend(bob, greeting: "Hi, it's Alice")
        _ = try await bobClient.answerFriendRequest(from: alice, accept: true)
        try check(try await aliceClient.friends().friends.map(\.status) == [.friend], "alice and bob are friends")
        _ = try await aliceClient.setRole(of: bob, in: group.groupID, admin: true)
        _ = try await bobClient.renameGroup(group.groupID, to: "Saturday hike")
        try check(try await carolAgain.groupInfo(group.groupID).name == "Saturday hike", "bob, now an admin, renamed the group")
        let photo = Parley_Attachment.with {
            $0.kind = .attachmentImage
            $0.url = "https://example.com/trail.jpg"
            $0.mimeType = "image/jpeg"
            $0.width = 1200
            $0.height = 800
        }
        _ = try await carolAgain.send(to: .group(group.groupID), body: "This trail?", attachment: photo, replyTo: hike.messageID, mentions: [alice])
        try check(await aliceInbox.wait { events in events.contains { $0.event.messagePosted.replyTo == hike.messageID } },
                  "alice received carol's photo reply")
        for summary in try await aliceClient.conversations().conversations {
            say("  \(summary.name): \(summary.unread) unread, last \"\(summary.lastMessage.messagePosted.body)\" from \(summary.lastMessage.messagePosted.sender)")
        }

        await aliceClient.disconnect()
        await bobClient.disconnect()
        await carolAgain.disconnect()
        say("demo complete: nothing lost, nothing twice")
    }

    /// `POST /v1/notices` for one user: the status and the user's result.
    private static func postNotice(_ platform: (url: String, service: String, token: String), id: String, to user: String, text: String) async throws -> String {
        var request = URLRequest(url: URL(string: "\(platform.url)/notices")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(platform.token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: ["notice_id": id, "to": [user], "text": text])
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        let result = (json?["results"] as? [[String: Any]])?.first?["status"] as? String ?? String(decoding: data, as: UTF8.self)
        return "\(status) \(result)"
    }
}
