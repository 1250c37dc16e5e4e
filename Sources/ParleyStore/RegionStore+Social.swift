import ParleyCore
import ParleyProto
import PostgresNIO

/// Reads of friends and groups: registers as devices see them (who decides
/// what is in `ParleyLogic`'s planner; these only read).
extension RegionStore {
    /// The user's friends, pending requests both ways, and the users they block.
    public func friends(of userID: String) async throws -> Parley_FriendList {
        let rows = try await database.query(
            """
            SELECT conversation_id, subject, name, value FROM registers
              WHERE conversation_id LIKE 'd:%' AND split_part(conversation_id, ':', 2) = \(userID) AND value <> ''
            UNION ALL SELECT conversation_id, subject, name, value FROM registers
              WHERE conversation_id LIKE 'd:%' AND split_part(conversation_id, ':', 3) = \(userID) AND value <> ''
            """,
            logger: logger
        )
        var friendships: [String: Friendship] = [:]
        var blocked: Set<String> = []
        for try await (conversation, subject, name, value) in rows.decode((String, String, String, String).self) {
            guard let (a, b) = ConversationID.directUsers(of: conversation) else { continue }
            let peer = a == userID ? b : a
            switch name {
            case "friend": friendships[peer] = Friendship(registerValue: value)
            case "block" where subject == userID: blocked.insert(peer)
            default: break
            }
        }
        var remarks: [String: String] = [:]
        let remarkRows = try await database.query(
            "SELECT key, value FROM user_settings WHERE user_id = \(userID) AND key LIKE 'remark/%' AND value <> ''", logger: logger
        )
        for try await (key, value) in remarkRows.decode((String, String).self) {
            if case .remark(let peer) = UserSetting(key: key) { remarks[peer] = value }
        }
        var list = Parley_FriendList()
        for (peer, friendship) in friendships.sorted(by: { $0.key < $1.key }) {
            var friend = Parley_Friend()
            friend.userID = peer
            friend.remark = remarks[peer] ?? ""
            switch friendship {
            case .none: continue
            case .friends: friend.status = .friend
            case .requested(let by, let greeting):
                // A request from someone the user blocks is not shown.
                if by == peer && blocked.contains(peer) { continue }
                friend.status = by == peer ? .friendIncoming : .friendOutgoing
                friend.greeting = greeting
            }
            list.friends.append(friend)
        }
        list.blocked = blocked.sorted()
        return list
    }

    /// A group's settings as they stand; nil for no such group.
    public func groupInfo(_ groupID: String) async throws -> Parley_GroupInfo? {
        let conversation = ConversationID.group(groupID)
        let rows = try await database.query(
            """
            SELECT 'created:name', name FROM conversations WHERE conversation_id = \(conversation) AND is_group
            UNION ALL SELECT 'created:owner', owner FROM conversations WHERE conversation_id = \(conversation) AND is_group
            UNION ALL SELECT name, value FROM registers WHERE conversation_id = \(conversation) AND subject = ''
            UNION ALL SELECT 'count', count(*)::text FROM members WHERE conversation_id = \(conversation) AND present
            """,
            logger: logger
        )
        var values: [String: String] = [:]
        for try await (name, value) in rows.decode((String, String).self) { values[name] = value }
        guard let createdName = values["created:name"] else { return nil }
        return .with {
            $0.groupID = groupID
            $0.name = values["name"] ?? createdName
            $0.owner = values["owner"].flatMap { $0.isEmpty ? nil : $0 } ?? values["created:owner"] ?? ""
            $0.announcement = values["announcement"] ?? ""
            $0.join = values["join"].flatMap { $0.isEmpty ? nil : $0 } ?? "invite"
            $0.invite = values["invite"].flatMap { $0.isEmpty ? nil : $0 } ?? "members"
            $0.muteAll = values["mute_all"] == "1"
            $0.dissolved = values["dissolved"] == "1"
            $0.memberCount = UInt32(values["count"] ?? "0") ?? 0
        }
    }

    /// One page of a group's present members, by user id after `after`.
    public func members(of groupID: String, after: String, limit: Int) async throws -> Parley_MemberList {
        let conversation = ConversationID.group(groupID)
        let owner = try await groupInfo(groupID)?.owner ?? ""
        let rows = try await database.query(
            """
            WITH page AS (SELECT user_id, hlc, origin FROM members
                          WHERE conversation_id = \(conversation) AND present AND user_id > \(after)
                          ORDER BY user_id LIMIT \(limit + 1))
            SELECT p.user_id, p.hlc, p.origin, coalesce(r.name, ''), coalesce(r.value, ''), coalesce(r.hlc, 0), coalesce(r.origin, '')
            FROM page p LEFT JOIN registers r ON r.conversation_id = \(conversation) AND r.subject = p.user_id
            ORDER BY p.user_id
            """,
            logger: logger
        )
        struct Row { var added: Stamp; var registers: [String: (value: String, stamp: Stamp)] = [:] }
        var order: [String] = []
        var found: [String: Row] = [:]
        for try await (user, hlc, origin, name, value, registerHLC, registerOrigin) in rows.decode(
            (String, Int64, String, String, String, Int64, String).self
        ) {
            if found[user] == nil {
                order.append(user)
                found[user] = Row(added: Stamp(hlc: HLC(rawValue: UInt64(hlc)), origin: origin))
            }
            if !name.isEmpty { found[user]?.registers[name] = (value, Stamp(hlc: HLC(rawValue: UInt64(registerHLC)), origin: registerOrigin)) }
        }
        var list = Parley_MemberList()
        list.more = order.count > limit
        for user in order.prefix(limit) {
            guard let row = found[user] else { continue }
            list.members.append(.with {
                $0.userID = user
                $0.role = GroupRole.of(user, owner: owner, role: row.registers["role"], added: row.added).description
                $0.nickname = row.registers["nickname"]?.value ?? ""
                $0.mutedUntilMs = UInt64(row.registers["muted_until"]?.value ?? "") ?? 0
            })
        }
        return list
    }
}
