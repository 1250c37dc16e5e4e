import ParleyCore
import Testing

@Suite struct VersionVectorTests {
    @Test func dominanceComparesEveryComponent() {
        let a = VersionVector(["eu": 3, "us": 1])
        let b = VersionVector(["eu": 2, "us": 1])
        let c = VersionVector(["ap": 1])
        #expect(a.dominates(b))
        #expect(!b.dominates(a))
        #expect(!a.dominates(c))
        #expect(a.dominates(VersionVector()))
    }

    @Test func mergeAndMinimumAreComponentWise() {
        let a = VersionVector(["eu": 3, "us": 1])
        let b = VersionVector(["eu": 2, "us": 5, "ap": 4])
        #expect(a.merged(with: b) == VersionVector(["eu": 3, "us": 5, "ap": 4]))
        #expect(VersionVector.minimum(of: [a, b]) == VersionVector(["eu": 2, "us": 1]))
    }

    @Test func zeroComponentsAreAbsent() {
        var v = VersionVector(["eu": 0])
        #expect(v.origins.isEmpty)
        v["us"] = 2
        v["us"] = 0
        #expect(v == VersionVector())
    }

    @Test func eventsBehindCountsWhatTheOtherHasAndThisLacks() {
        let mine = VersionVector(["eu": 10, "us": 4, "ap": 7])
        let peers = VersionVector(["eu": 3, "us": 9, "ap": 7, "sa": 2])
        #expect(mine.eventsBehind(peers) == 5 + 2)
        #expect(mine.eventsBehind(peers, excluding: "us") == 2)
        #expect(peers.eventsBehind(mine) == 7)
        #expect(mine.eventsBehind(mine) == 0)
    }
}
