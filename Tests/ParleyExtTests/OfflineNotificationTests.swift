import ParleyCore
import ParleyProto
import ParleyStore
import Testing

@testable import ParleyExt

@Suite struct OfflineNotificationTests {
    static func posted(_ seq: UInt64, from sender: String, in conversation: String, to audience: [String], _ body: String) -> Parley_Event {
        .with { event in
            event.origin = "eu"
            event.seq = seq
            event.audience = audience.map { user in .with { $0.userID = user } }
            event.messagePosted = .with {
                $0.messageID = "eu-\(seq)"
                $0.sender = sender
                $0.conversationID = conversation
                $0.body = body
            }
        }
    }

    @Test func offlineDevicesWithATokenAreOwedUnlessMutedAndNeverTheSender() {
        let group = ConversationID.group("team")
        let events = [
            Self.posted(1, from: "ann", in: group, to: ["ann", "bob", "cat", "dan"], String(repeating: "x", count: 300)),
            Self.posted(2, from: "bob", in: group, to: ["ann", "bob", "cat", "dan"], "hi"),
            .with { $0.origin = "eu"; $0.seq = 3; $0.audience = [.with { $0.userID = "bob" }]; $0.readMoved = .with { $0.reader = "bob" } },
        ]
        #expect(OfflineNotifications.recipients(of: events) == ["ann", "bob", "cat", "dan"])
        let settings: [String: [UserSetting: String]] = [
            "ann": [.pushToken(device: "phone"): "t-ann"],
            "bob": [.pushToken(device: "phone"): "t-bob-phone", .pushToken(device: "tablet"): "t-bob-tablet"],
            "cat": [.pushToken(device: "phone"): "t-cat", .muted(conversation: group): "1"],
            "dan": [.pushToken(device: "phone"): "t-dan", .muted(conversation: ""): "1"],
        ]
        let owed = OfflineNotifications.owed(by: events, settings: settings, online: ["bob": ["tablet"]])
        #expect(owed.map { "\($0.seq) \($0.userID)/\($0.deviceID) \($0.token)" } == ["1 bob/phone t-bob-phone", "2 ann/phone t-ann"])
        #expect(owed[0].preview.count == OfflineNotifications.previewLength && owed[0].sender == "ann" && owed[0].messageID == "eu-1")

        // A mention reaches a muted member (cat muted the group, dan everything).
        var mention = Self.posted(4, from: "ann", in: group, to: ["ann", "bob", "cat", "dan"], "@cat @dan look")
        mention.messagePosted.mentions = ["cat", "dan"]
        let mentioned = OfflineNotifications.owed(by: [mention], settings: settings, online: ["bob": ["tablet"]])
        #expect(mentioned.map { "\($0.userID)/\($0.deviceID)" } == ["bob/phone", "cat/phone", "dan/phone"])
    }

    /// The signature a gateway checks, against Python's hmac module:
    /// `hmac.new(secret, b"1700000000.{\"a\":1}", sha256).hexdigest()`.
    @Test func theSignatureIsHMACSHA256OfTimestampDotBody() throws {
        let secret = "push-secret-for-tests-0123456789abcdef"
        let gateway = try PushGateway(url: "http://127.0.0.1:9/push", secret: secret)
        let signature = PushGateway.signature(body: #"{"a":1}"#, timestamp: 1_700_000_000, secret: gateway.secret)
        #expect(signature == "v1=611578626e88c97c98aff676de1da64899a47dae8a23e9d9c64a9b67c56707f9")
        #expect(PushGateway.verify(body: #"{"a":1}"#, timestamp: 1_700_000_000, signature: signature, secret: secret))
        #expect(!PushGateway.verify(body: #"{"a":2}"#, timestamp: 1_700_000_000, signature: signature, secret: secret))
        #expect(!PushGateway.verify(body: #"{"a":1}"#, timestamp: 1_700_000_001, signature: signature, secret: secret))
        #expect(throws: ExtError.self) { try PushGateway(url: "https://push.example:443/", secret: secret) }
        #expect(throws: ExtError.self) { try PushGateway(url: "http://127.0.0.1:9/push", secret: "short") }
    }

    @Test func anAnnouncementNamesARunOfEventsAndIsCutIntoJobs() {
        let work = FollowUpWork(origin: "eu", seqs: 5...2_504)
        #expect(FollowUpWork(fields: work.fields) == work)
        #expect(FollowUpWork(fields: ["origin", "eu", "first", "0", "last", "3"]) == nil)
        #expect(FollowUpWork(fields: ["origin", "eu", "first", "9", "last", "3"]) == nil)
        #expect(work.split(size: 1_000).map(\.seqs) == [5...1_004, 1_005...2_004, 2_005...2_504])
    }
}
