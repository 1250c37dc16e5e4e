import ParleyCore
import ParleyProto
import Testing

@testable import ParleyClient

/// The SDK's decisions as transcripts: what happened in, what to do out,
/// with no socket and no clock but the instants given.
@Suite struct ClientStateMachineTests {
    private let start = ContinuousClock.now
    private let eu = RegionDirectory.Candidate(region: "eu", address: .tcp(host: "127.0.0.1", port: 7100))
    private let us = RegionDirectory.Candidate(region: "us", address: .tcp(host: "127.0.0.1", port: 7200))

    private func machine(liveness: Duration? = nil, reconnects: Bool = true) -> ClientStateMachine {
        ClientStateMachine(
            settings: .init(avoidLostRegionFor: .seconds(30), livenessTimeout: liveness, reconnects: reconnects),
            cursor: SyncCursor(), now: start
        )
    }

    private func at(_ offset: Duration) -> ContinuousClock.Instant { start + offset }

    private func push(origin: String, userSeq: UInt64, eventSeq: UInt64) -> Parley_Push {
        .with {
            $0.position = .with { $0.origin = origin; $0.userSeq = userSeq }
            $0.event = .with { $0.origin = origin; $0.seq = eventSeq }
        }
    }

    @Test func aLostRegionIsTriedLastUntilItsTimeIsUpAndTheFailoverIsTimed() {
        var client = machine()
        client.opened(1, to: eu, now: start)
        let tickPeriod = client.signedIn(1, heartbeatIntervalMs: 1_000, now: start)
        #expect(tickPeriod == .milliseconds(500), "tick: a quarter of the liveness (2 s)")
        client.caughtUp(now: start)
        #expect(client.region == "eu")
        #expect(client.recoveries.isEmpty, "a first connect is not a recovery")

        let afterLoss = client.lost(1, reason: "closed by the server", now: at(.seconds(1)))
        #expect(afterLoss == .closeAndReconnect(id: 1, jitter: .milliseconds(200)))
        #expect(client.region == nil)
        let order = client.order([eu, us], now: at(.seconds(2)))
        #expect(order == [us, eu], "eu goes last")

        client.opened(2, to: us, now: at(.seconds(2)))
        _ = client.signedIn(2, heartbeatIntervalMs: 1_000, now: at(.seconds(2)))
        client.caughtUp(now: at(.seconds(3)))
        #expect(client.recoveries.count == 1)
        #expect(client.recoveries.first?.from == "eu" && client.recoveries.first?.to == "us")
        #expect(client.recoveries.first?.downtime == .seconds(2))
        #expect(client.recoveries.first?.reason == "closed by the server")

        let order2 = client.order([eu, us], now: at(.seconds(32)))
        #expect(order2 == [eu, us], "after 30 s eu is first again")
        client.forgetLostRegions()
    }

    @Test func aLossReportedByAConnectionNoLongerCurrentChangesNothing() {
        var client = machine()
        client.opened(1, to: eu, now: start)
        _ = client.signedIn(1, heartbeatIntervalMs: 1_000, now: start)
        let dropped = client.drop()
        #expect(dropped == 1, "the client moves on itself (rehome)")
        client.opened(2, to: us, now: start)
        _ = client.signedIn(2, heartbeatIntervalMs: 1_000, now: start)
        let afterLoss = client.lost(1, reason: "late reader", now: at(.seconds(1)))
        #expect(afterLoss == .ignore)
        #expect(client.region == "us")
        let tick = client.tick(1, now: at(.seconds(1)))
        #expect(tick == .stop, "the old keep-alive stops")
    }

    @Test func aSilentConnectionGetsHeartbeatsThenIsAbandoned() {
        var client = machine(liveness: .seconds(4))
        client.opened(1, to: eu, now: start)
        let tickPeriod = client.signedIn(1, heartbeatIntervalMs: 10_000, now: start)
        #expect(tickPeriod == .seconds(1))
        let tick = client.tick(1, now: at(.seconds(1)))
        #expect(tick == .wait)
        let tick2 = client.tick(1, now: at(.seconds(2)))
        #expect(tick2 == .sendHeartbeat, "half the liveness passed in silence")
        let tick3 = client.tick(1, now: at(.milliseconds(2_500)))
        #expect(tick3 == .sendHeartbeat, "still silent")
        _ = client.received(.with { $0.heartbeat = .init() }, isAwaited: { _ in false }, now: at(.seconds(3)))
        let tick4 = client.tick(1, now: at(.milliseconds(3_500)))
        #expect(tick4 == .wait, "an answer resets the silence")
        let tick5 = client.tick(1, now: at(.milliseconds(7_100)))
        #expect(tick5 == .abandon(reason: "nothing received for 4.0 seconds"))
    }

    @Test func afterDisconnectALossDoesNotReconnectAndNeitherDoRetries() {
        var client = machine()
        client.opened(1, to: eu, now: start)
        _ = client.signedIn(1, heartbeatIntervalMs: 1_000, now: start)
        let dropped = client.drop(stop: true)
        #expect(dropped == 1)
        #expect(!client.wantsReconnect)
        #expect(client.retryRequest(after: ClientConnectionError.notConnected, attempt: 1) == .giveUp)
        client.startConnecting()
        #expect(client.wantsReconnect, "connect() allows reconnecting again")

        var noReconnects = machine(reconnects: false)
        noReconnects.opened(1, to: eu, now: start)
        let afterLoss = noReconnects.lost(1, reason: "reset", now: start)
        #expect(afterLoss == .close(id: 1))
    }

    /// The sequence numbers of what a step delivered.
    private func delivered(_ inbound: ClientStateMachine.Inbound) -> [UInt64] {
        if case .deliver(let events) = inbound { return events.map(\.position.userSeq) }
        return []
    }

    @Test func pushesAreDeliveredOnceInOrder() {
        var client = machine()
        let first = client.accept(push(origin: "eu", userSeq: 1, eventSeq: 10), live: true)
        guard case .deliver(let events) = first, let event = events.first else {
            Issue.record("the next event is delivered: \(first)")
            return
        }
        #expect(events.count == 1 && event.live && event.event.seq == 10)
        #expect(client.session["eu"] == 10, "a received event joins the session")
        let again = client.accept(push(origin: "eu", userSeq: 1, eventSeq: 10), live: true)
        #expect(again == .none, "a duplicate")
    }

    /// Two logic instances push one user's events over two streams: a push
    /// may overtake the one before it. It waits, and both go out, live and in
    /// order, without a pull.
    @Test func aPushThatOvertookItsPredecessorWaitsForItWithoutAPull() {
        var client = machine()
        let early = client.accept(push(origin: "eu", userSeq: 2, eventSeq: 11), live: true)
        #expect(early == .checkGapAfter(ClientStateMachine.reorderWait))
        let later = client.accept(push(origin: "eu", userSeq: 3, eventSeq: 12), live: true)
        #expect(later == .none, "one check covers the gap")
        let filled = client.accept(push(origin: "eu", userSeq: 1, eventSeq: 10), live: true)
        #expect(delivered(filled) == [1, 2, 3])
        if case .deliver(let events) = filled {
            let allLive = events.allSatisfy { $0.live }
            #expect(allLive)
        }
        let open = client.gapStillOpen()
        #expect(!open, "no pull: the gap closed in time")
        #expect(client.gapsPulled == 0)
        #expect(client.cursor.vector["eu"] == 3)
    }

    @Test func aGapThatStaysOpenIsPulledAndTheWaitingPushFollowsThePage() {
        var client = machine()
        _ = client.accept(push(origin: "eu", userSeq: 1, eventSeq: 10), live: true)
        let ahead = client.accept(push(origin: "eu", userSeq: 3, eventSeq: 12), live: true)
        #expect(ahead == .checkGapAfter(ClientStateMachine.reorderWait))
        let open = client.gapStillOpen()
        #expect(open, "user_seq 2 did not come: pull")
        #expect(client.gapsPulled == 1)
        let fromSync = client.accept(push(origin: "eu", userSeq: 2, eventSeq: 11), live: false)
        #expect(delivered(fromSync) == [2, 3], "the page's event, then the push that waited for it")
        let pageGoesOn = client.accept(push(origin: "eu", userSeq: 3, eventSeq: 12), live: false)
        #expect(pageGoesOn == .none, "already delivered")
        let behind = client.accept(push(origin: "eu", userSeq: 5, eventSeq: 14), live: false)
        #expect(behind == .none, "a sync page never skips, so never waits")
    }

    @Test func waitingPushesThatASyncPagePassedAreForgotten() {
        var client = machine()
        _ = client.accept(push(origin: "eu", userSeq: 3, eventSeq: 12), live: true)
        let openBefore = client.gapStillOpen()
        #expect(openBefore)
        for seq in 1...4 as ClosedRange<UInt64> {
            _ = client.accept(push(origin: "eu", userSeq: seq, eventSeq: 9 + seq), live: false)
        }
        #expect(client.cursor.vector["eu"] == 4)
        let openAfter = client.gapStillOpen()
        #expect(!openAfter, "nothing waits any more")
    }

    @Test func framesAnsweringARequestGoToItAndAnErrorFrameIsKept() {
        var client = machine()
        let answer = Parley_Frame.with { $0.requestID = 7; $0.sendAck = .init() }
        let inbound = client.received(answer, isAwaited: { $0 == 7 }, now: start)
        #expect(inbound == .answer(requestID: 7))
        let inbound2 = client.received(answer, isAwaited: { _ in false }, now: start)
        #expect(inbound2 == .none, "an answer to an abandoned request")
        let error = Parley_Frame.with { $0.error = .with { $0.code = ClientErrorCode.goingAway.rawValue; $0.message = "bye" } }
        let inbound3 = client.received(error, isAwaited: { _ in false }, now: start)
        #expect(inbound3 == .none)
        #expect(client.lastServerError?.code == .goingAway)
    }

    @Test func aPullAskedForDuringAPullMakesItGoRoundOnceMore() {
        var client = machine()
        let started = client.startSync()
        #expect(started)
        let started2 = client.startSync()
        #expect(!started2, "coalesced")
        let started3 = client.startSync()
        #expect(!started3)
        let again = client.syncPassEnded()
        #expect(again, "one more pass")
        let again2 = client.syncPassEnded()
        #expect(!again2)
        let started4 = client.startSync()
        #expect(started4)
        client.syncFailed()
        let started5 = client.startSync()
        #expect(started5, "a failed pull does not block the next")
    }

    /// The wait of a retry, nil when it gives up.
    private func wait(_ retry: ClientStateMachine.Retry) -> Duration? {
        if case .after(let delay) = retry { return delay }
        return nil
    }

    @Test func refusalsAreFinalAndOutagesAreRetriedWithBackoff() {
        let client = machine()
        #expect(client.retryRequest(after: ClientError(.notMember, "no"), attempt: 1) == .giveUp)
        // Backoff.client: 50 ms doubling, each wait between half and all of it.
        let first = wait(client.retryRequest(after: ClientError(.unavailable, "retry"), attempt: 1))
        #expect(first.map { $0 >= .milliseconds(50) && $0 <= .milliseconds(100) } == true)
        let third = wait(client.retryRequest(after: ClientConnectionError.closed("reset"), attempt: 3))
        #expect(third.map { $0 >= .milliseconds(200) && $0 <= .milliseconds(400) } == true)
        #expect(client.retryRequest(after: ClientConnectionError.timedOut, attempt: 8) == .giveUp, "eight attempts")
        #expect(!client.triesNextGate(after: ClientError(.tokenInvalid, "bad token")))
        #expect(client.triesNextGate(after: ClientConnectionError.timedOut))
        #expect(client.retryReconnect(after: ClientError(.tokenExpired, "expired"), failures: 1) == .giveUp)
        #expect(wait(client.retryReconnect(after: ClientConnectionError.closed("refused"), failures: 2)) != nil)
    }
}
