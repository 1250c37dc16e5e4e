import ParleyCore
import Testing

@Suite struct RateLeasesTests {
    @Test func leaseSizeIsAQuarterOfASecondCappedByAQuarterOfTheBurst() {
        #expect(RateLimit(perSecond: 50, burst: 200).leaseSize == 12)
        #expect(RateLimit(perSecond: 1_000, burst: 40).leaseSize == 10)
        #expect(RateLimit(perSecond: 1, burst: 2).leaseSize == 1)
        #expect(RateLimit.unlimited.isUnlimited && !RateLimit(perSecond: 0.5, burst: 1).isUnlimited)
    }

    @Test func aLeaseIsSpentLocallyThenTheBucketIsAskedAgain() {
        var ledger = LeaseLedger()
        #expect(ledger.take("u:ann", now: 1_000) == .askForLease)
        ledger.leased("u:ann", granted: 3, retryAfterMilliseconds: 0, now: 1_000)
        #expect(ledger.take("u:ann", now: 1_000) == .granted)
        #expect(ledger.take("u:ann", now: 1_001) == .granted)
        #expect(ledger.take("u:ann", now: 1_002) == .granted)
        #expect(ledger.take("u:ann", now: 1_003) == .askForLease, "three tokens leased, three spent")
        #expect(ledger.take("u:bob", now: 1_003) == .askForLease, "keys are apart")
    }

    @Test func unspentTokensExpireWithTheirLease() {
        var ledger = LeaseLedger(leaseLifetimeMilliseconds: 1_000)
        ledger.leased("d:ann", granted: 10, retryAfterMilliseconds: 0, now: 0)
        #expect(ledger.take("d:ann", now: 999) == .granted)
        #expect(ledger.take("d:ann", now: 1_000) == .askForLease)
        // A new lease does not add the expired tokens back.
        ledger.leased("d:ann", granted: 1, retryAfterMilliseconds: 0, now: 1_000)
        #expect(ledger.take("d:ann", now: 1_001) == .granted)
        #expect(ledger.take("d:ann", now: 1_002) == .askForLease)
    }

    @Test func aRefusalIsRememberedUntilTheBucketRefills() {
        var ledger = LeaseLedger()
        ledger.leased("ip:10.0.0.1", granted: 0, retryAfterMilliseconds: 250, now: 5_000)
        #expect(ledger.take("ip:10.0.0.1", now: 5_000) == .refused(retryAfterMilliseconds: 250))
        #expect(ledger.take("ip:10.0.0.1", now: 5_100) == .refused(retryAfterMilliseconds: 150), "no Redis call while refused")
        #expect(ledger.refusal("ip:10.0.0.1", now: 5_200) == 50 && ledger.refusal("ip:10.0.0.2", now: 5_200) == 0)
        #expect(ledger.take("ip:10.0.0.1", now: 5_250) == .askForLease)
        ledger.leased("ip:10.0.0.1", granted: 0, retryAfterMilliseconds: 0, now: 5_250)
        #expect(ledger.take("ip:10.0.0.1", now: 5_250) == .refused(retryAfterMilliseconds: 1), "a refusal always names a wait")
    }

    /// Leases asked for at once (before one answered) all land: a refusal
    /// among them does not throw away the tokens the others brought.
    @Test func aRefusalDoesNotDropTokensAnotherLeaseBrought() {
        var ledger = LeaseLedger()
        ledger.leased("ip:10.0.0.1", granted: 5, retryAfterMilliseconds: 0, now: 0)
        ledger.leased("ip:10.0.0.1", granted: 0, retryAfterMilliseconds: 300, now: 1)
        for _ in 0..<5 { #expect(ledger.take("ip:10.0.0.1", now: 2) == .granted) }
        #expect(ledger.take("ip:10.0.0.1", now: 3) == .askForLease)
    }

    @Test func keysWithNothingToRememberAreForgotten() {
        var ledger = LeaseLedger(leaseLifetimeMilliseconds: 10)
        for user in 0..<100 { ledger.leased("u:\(user)", granted: 2, retryAfterMilliseconds: 0, now: 0) }
        #expect(ledger.count == 100)
        for _ in 0..<4_096 { _ = ledger.take("u:active", now: 1_000) }
        #expect(ledger.count == 0, "leases over, no refusal pending: swept")
    }
}
