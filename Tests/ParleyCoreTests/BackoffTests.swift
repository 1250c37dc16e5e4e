import Testing

@testable import ParleyCore

@Suite struct BackoffTests {
    @Test func doublesFromTheBaseUpToTheCap() {
        let backoff = Backoff.internalLink
        #expect((1...7).map { backoff.delay(afterFailures: $0) } == [100, 200, 400, 800, 1_600, 2_000, 2_000].map { .milliseconds($0) })
        #expect(backoff.delay(afterFailures: 1_000) == .seconds(2), "a long outage does not overflow")
    }

    @Test func jitterKeepsEachWaitBetweenItsShareAndTheWhole() {
        let backoff = Backoff(base: .milliseconds(50), cap: .seconds(5), jitter: 0.5)
        let waits = (0..<200).map { _ in backoff.delay(afterFailures: 3) }
        #expect(waits.allSatisfy { $0 >= .milliseconds(200) && $0 <= .milliseconds(400) })
        #expect(Set(waits).count > 1, "the waits are spread")
    }
}
