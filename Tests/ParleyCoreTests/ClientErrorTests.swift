import ParleyCore
import Testing

/// What a device may be told of an error: its own `ClientError`, a lower
/// layer's chosen answer, or `internal` with the details kept for the logs.
@Suite struct ClientErrorTests {
    private struct DatabaseFailure: Error, CustomStringConvertible {
        var description: String { "FATAL: password authentication failed for user \"parley\" at 10.0.0.7:5432" }
    }

    private struct LinkFailure: ClientErrorConvertible {
        var clientError: ClientError { ClientError(.unavailable, "retry", detail: "logic 10.0.0.9:7000 is down") }
    }

    @Test func aClientErrorPassesAsIs() {
        let refusal = ClientError(converting: ClientError(.notMember, "not a member of g:x"))
        #expect(refusal.code == .notMember && refusal.message == "not a member of g:x")
    }

    @Test func aConvertibleErrorGivesItsOwnAnswer() {
        let refusal = ClientError(converting: LinkFailure())
        #expect(refusal.code == .unavailable && refusal.message == "retry")
        #expect(refusal.debugDescription.contains("10.0.0.9"), "the logs keep the detail")
    }

    @Test func anyOtherErrorBecomesInternalAndItsWordsStayInTheLogs() {
        let refusal = ClientError(converting: DatabaseFailure())
        #expect(refusal.code == .internalError)
        #expect(refusal.message == "internal error")
        #expect(!refusal.description.contains("password") && !refusal.description.contains("10.0.0.7"))
        #expect(refusal.debugDescription.contains("password authentication failed"))
    }
}
