import ParleyCore
import ParleyProto
import ParleyStore

/// Who is owed a notification for a run of events: the rule of offline
/// push, without I/O. A message posted notifies each other member's devices
/// that have a push token, are not connected, and whose user has muted
/// neither the conversation nor everything, or is mentioned by it (a mention
/// reaches a muted member). Other events notify nobody.
enum OfflineNotifications {
    /// The longest preview of a message's body sent to the push gateway, in characters.
    static let previewLength = 100

    /// The users whose settings and presence `owed` needs.
    static func recipients(of events: [Parley_Event]) -> Set<String> {
        var users: Set<String> = []
        for event in events {
            guard case .messagePosted(let posted) = event.kind else { continue }
            for entry in event.audience where entry.userID != posted.sender { users.insert(entry.userID) }
        }
        return users
    }

    /// `settings`: each recipient's private settings; `online`: the devices
    /// of each recipient connected to this region now.
    static func owed(
        by events: [Parley_Event], settings: [String: [UserSetting: String]], online: [String: Set<String>]
    ) -> [OwedNotification] {
        var owed: [OwedNotification] = []
        for event in events {
            guard case .messagePosted(let posted) = event.kind else { continue }
            for entry in event.audience where entry.userID != posted.sender {
                let user = entry.userID
                guard let own = settings[user] else { continue }
                let muted = own[.muted(conversation: "")] != nil || own[.muted(conversation: posted.conversationID)] != nil
                guard !muted || posted.mentions.contains(user) else { continue }
                for (setting, token) in own.sorted(by: { $0.key.key < $1.key.key }) {
                    guard case .pushToken(let device) = setting, !token.isEmpty, online[user]?.contains(device) != true else { continue }
                    owed.append(OwedNotification(
                        userID: user, deviceID: device, token: token, seq: event.seq, messageID: posted.messageID,
                        conversationID: posted.conversationID, sender: posted.sender,
                        preview: String(posted.body.prefix(previewLength))
                    ))
                }
            }
        }
        return owed
    }
}
