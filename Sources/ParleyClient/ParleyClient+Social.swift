import ParleyProto

/// Friends, blocks and group administration (docs/PROTOCOL.md, "Friends"
/// and "Groups"). Every change is retried like any request and answered
/// with a `change_ack` whose event is empty when nothing changed.
extension ParleyClient {
    // MARK: - Friends and blocks

    /// Asks `userID` to be friends; accepts at once if they asked first.
    public func requestFriend(_ userID: String, greeting: String = "") async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.friendRequest = .with {
                $0.userID = userID
                $0.greeting = greeting
            }
        }).changeAck
    }

    /// Accepts or declines the request `userID` sent (error 28 when none waits).
    public func answerFriendRequest(from userID: String, accept: Bool) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.friendRespond = .with {
                $0.userID = userID
                $0.accept = accept
            }
        }).changeAck
    }

    /// Ends a friendship, or withdraws (or declines) a pending request.
    public func removeFriend(_ userID: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with { $0.friendRemove = .with { $0.userID = userID } }).changeAck
    }

    public func block(_ userID: String, _ blocked: Bool = true) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.block = .with {
                $0.userID = userID
                $0.blocked = blocked
            }
        }).changeAck
    }

    /// This user's private name for `userID` ("" clears it).
    public func setRemark(_ remark: String, for userID: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.setRemark = .with {
                $0.userID = userID
                $0.remark = remark
            }
        }).changeAck
    }

    public func friends() async throws -> Parley_FriendList {
        try await requestWithRetry(.with { $0.friends = Parley_FriendsRequest() }).friendList
    }

    // MARK: - Groups

    public func updateGroup(_ groupID: String, _ field: Parley_GroupField, to value: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.updateGroup = .with {
                $0.groupID = groupID
                $0.field = field
                $0.value = value
            }
        }).changeAck
    }

    public func renameGroup(_ groupID: String, to name: String) async throws -> Parley_ChangeAck {
        try await updateGroup(groupID, .groupName, to: name)
    }

    public func setAnnouncement(_ text: String, in groupID: String) async throws -> Parley_ChangeAck {
        try await updateGroup(groupID, .groupAnnouncement, to: text)
    }

    /// Hands the group over to another member (the owner only).
    public func transferGroup(_ groupID: String, to userID: String) async throws -> Parley_ChangeAck {
        try await updateGroup(groupID, .groupOwner, to: userID)
    }

    /// Dissolves the group for good (the owner only).
    public func dissolveGroup(_ groupID: String) async throws -> Parley_ChangeAck {
        try await updateGroup(groupID, .groupDissolved, to: "1")
    }

    public func updateMember(_ userID: String, in groupID: String, _ field: Parley_MemberField, to value: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.updateMember = .with {
                $0.groupID = groupID
                $0.userID = userID
                $0.field = field
                $0.value = value
            }
        }).changeAck
    }

    /// Makes a member an admin, or a plain member again (the owner only).
    public func setRole(of userID: String, in groupID: String, admin: Bool) async throws -> Parley_ChangeAck {
        try await updateMember(userID, in: groupID, .memberRole, to: admin ? "admin" : "member")
    }

    /// This user's nickname in the group.
    public func setNickname(_ nickname: String, in groupID: String, as userID: String) async throws -> Parley_ChangeAck {
        try await updateMember(userID, in: groupID, .memberNickname, to: nickname)
    }

    /// Mutes a member until `untilMilliseconds` since 1970 (nil unmutes).
    public func muteMember(_ userID: String, in groupID: String, untilMilliseconds: UInt64?) async throws -> Parley_ChangeAck {
        try await updateMember(userID, in: groupID, .memberMutedUntil, to: untilMilliseconds.map(String.init) ?? "")
    }

    /// Joins a group whose join policy is "open".
    public func joinGroup(_ groupID: String) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with { $0.joinGroup = .with { $0.groupID = groupID } }).changeAck
    }

    public func groupInfo(_ groupID: String) async throws -> Parley_GroupInfo {
        try await requestWithRetry(.with { $0.groupInfo = .with { $0.groupID = groupID } }).group
    }

    /// One page of members, sorted by user id, after `after`.
    public func members(of groupID: String, after: String = "", limit: UInt32 = 200) async throws -> Parley_MemberList {
        try await requestWithRetry(.with {
            $0.members = .with {
                $0.groupID = groupID
                $0.afterUserID = after
                $0.limit = limit
            }
        }).memberList
    }

    // MARK: - Messages and conversations

    /// Deletes a message on this user's devices only, or for everyone (a recall).
    public func delete(messageID: String, forEveryone: Bool = false) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.delete = .with {
                $0.messageID = messageID
                $0.forEveryone = forEveryone
            }
        }).changeAck
    }

    /// Read counts of messages and the other members' markers in one conversation.
    public func receipts(in conversationID: String, for messageIDs: [String]) async throws -> Parley_Receipts {
        try await requestWithRetry(.with {
            $0.receipts = .with {
                $0.conversationID = conversationID
                $0.messageIds = messageIDs
            }
        }).receiptsAnswer
    }

    /// Tells the conversation's other members this user is typing (or stopped).
    public func typing(in conversationID: String, _ typing: Bool = true) async throws {
        _ = try await request(.with {
            $0.typing = .with {
                $0.conversationID = conversationID
                $0.typing = typing
            }
        })
    }

    /// This user's conversations: pinned first, then newest activity first.
    public func conversations(limit: UInt32 = 100) async throws -> Parley_ConversationList {
        try await requestWithRetry(.with { $0.conversations = .with { $0.limit = limit } }).conversationList
    }

    /// Pins or unpins a conversation on every device of this user.
    public func pin(_ conversationID: String, _ pinned: Bool = true) async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with {
            $0.pin = .with {
                $0.conversationID = conversationID
                $0.pinned = pinned
            }
        }).changeAck
    }

    /// Signs the user out: tokens issued until now stop being accepted, in
    /// every region, for `device` ("": every device, this one too); the
    /// connections signed in with them are closed with `token_revoked` (18).
    public func revokeTokens(device: String = "") async throws -> Parley_ChangeAck {
        try await requestWithRetry(.with { $0.revokeTokens = .with { $0.deviceID = device } }).changeAck
    }

    /// Unread counts per conversation and in total.
    public func unread() async throws -> Parley_UnreadCounts {
        try await requestWithRetry(.with { $0.unread = Parley_UnreadRequest() }).unreadCounts
    }
}
