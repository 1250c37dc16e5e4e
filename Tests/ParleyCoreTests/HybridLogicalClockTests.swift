import ParleyCore
import Testing

@Suite struct HybridLogicalClockTests {
    @Test func localEventsStrictlyIncreaseEvenWhenTimeStandsStill() {
        var clock = HybridLogicalClockState()
        let a = clock.now(physicalMilliseconds: 1_000)
        let b = clock.now(physicalMilliseconds: 1_000)
        let c = clock.now(physicalMilliseconds: 999)
        #expect(a < b && b < c)
        #expect(a == HLC(milliseconds: 1_000, counter: 0))
        #expect(c == HLC(milliseconds: 1_000, counter: 2))
    }

    @Test func observingARemoteTimestampFromTheFutureMovesPastIt() {
        var clock = HybridLogicalClockState()
        let remote = HLC(milliseconds: 5_000, counter: 7)
        clock.observe(remote, physicalMilliseconds: 1_000)
        let next = clock.now(physicalMilliseconds: 1_001)
        #expect(next > remote)
        #expect(next.milliseconds == 5_000)
    }

    @Test func aFullCounterBorrowsTheNextMillisecond() {
        var clock = HybridLogicalClockState(last: HLC(milliseconds: 10, counter: .max))
        #expect(clock.now(physicalMilliseconds: 5) == HLC(milliseconds: 11, counter: 0))
    }

    @Test func injectedPhysicalClockDrivesTheSharedClock() {
        let skewed = HybridLogicalClock(physical: { 42_000 })
        let first = skewed.now()
        #expect(first.milliseconds == 42_000)
        #expect(skewed.now() > first)
    }
}
