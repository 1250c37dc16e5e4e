import ParleyCore
import ParleyProto
import ParleyRPC
import ServiceLifecycle

/// Posts notices as sends of the service's account (`~<service>`), through
/// the region's logic instances like a gate's calls: the writer first, the
/// others when it is down. Logic applies the same rules and idempotency as
/// to any send (docs/PLATFORM.md).
final class NoticePoster: Sendable {
    /// One link per logic instance, in the region's order (the writer first).
    let links: [LogicLink]

    init(links: [LogicLink]) {
        self.links = links
    }

    /// What became of a notice to one user.
    enum Outcome {
        case posted(messageID: String)
        case duplicate(messageID: String)
        case refused(ClientError)
        /// Not stored, or not known to be: the caller retries with the same id.
        case failed(String)
    }

    /// Puts every send on a link at once (logic commits them together),
    /// then waits for every answer; the outcomes are in `users`' order.
    /// `clientMsgID` names each user's send: the same notice to the same
    /// user is always the same send, so a retry is a duplicate.
    func post(service: String, body: String, to users: [String], clientMsgID: (String) -> String) async -> [Outcome] {
        let answers = users.map { user -> Result<OneShot<Parley_Frame>, any Error> in
            let call = Parley_ClientCall.with {
                $0.userID = ServiceAccount.userID(of: service)
                $0.deviceID = "platform"
                $0.frame = .with {
                    $0.send = .with {
                        $0.clientMsgID = clientMsgID(user)
                        $0.toUser = user
                        $0.body = body
                    }
                }
            }
            return Result { try send(call) }
        }
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(users.count)
        for answer in answers {
            do {
                let frame = try await answer.get().value()
                switch frame.body {
                case .sendAck(let ack):
                    outcomes.append(ack.duplicate ? .duplicate(messageID: ack.messageID) : .posted(messageID: ack.messageID))
                case .error(let error):
                    outcomes.append(.refused(ClientError(ClientErrorCode(rawValue: error.code), error.message)))
                default:
                    outcomes.append(.failed("unexpected answer from logic"))
                }
            } catch {
                outcomes.append(.failed(ClientError(converting: error).message))
            }
        }
        return outcomes
    }

    /// On the first link that is open, else on the first that takes it.
    private func send(_ call: Parley_ClientCall) throws -> OneShot<Parley_Frame> {
        for link in links {
            if let answer = try? link.send(call, onlyIfOpen: true) { return answer }
        }
        for link in links {
            if let answer = try? link.send(call) { return answer }
        }
        throw LinkError.down(address: links.first?.address ?? "none")
    }
}
