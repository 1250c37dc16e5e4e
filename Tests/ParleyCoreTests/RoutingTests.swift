import ParleyCore
import Testing

@Suite struct RegionHealthTests {
    @Test func downAfterFFailuresInARowAndUpAfterSSuccessesInARow() {
        var health = RegionHealth(downAfter: 3, upAfter: 2)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: true) == nil, "a success breaks the run")
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.state == .up)
        #expect(health.record(success: false) == .down)
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: false) == nil, "one success is not enough to come back")
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: true) == .up)
        #expect(health.state == .up)
    }

    @Test func slowProbesGiveABusyRegionTimeAndAHungOneIsDownAfterSlowDownAfter() {
        var health = RegionHealth(downAfter: 3, upAfter: 2, slowDownAfter: 12)
        // A gate absorbing a storm: late answers for a while, a few ok among them.
        for _ in 0..<3 {
            for _ in 0..<11 { #expect(health.record(.slow) == nil) }
            #expect(health.record(.ok) == nil)
        }
        #expect(health.state == .up)
        // Slow probes do not count as failures, but they do not reset them either.
        #expect(health.record(.failed) == nil)
        #expect(health.record(.slow) == nil)
        #expect(health.record(.failed) == nil)
        #expect(health.record(.slow) == nil)
        #expect(health.record(.failed) == .down, "the third failure in a run of troubled probes")
        #expect(health.record(.ok) == nil)
        #expect(health.record(.ok) == .up)
        // A gate that accepts connections and never answers is gone after 12 probes.
        for _ in 0..<11 { #expect(health.record(.slow) == nil) }
        #expect(health.record(.slow) == .down)
        #expect(health.record(.slow) == nil, "down stays down while slow")
    }

    @Test func onePercentOfProbesFailingNeverFlapsAndAGoneRegionIsDownWithinFProbes() {
        var health = RegionHealth(downAfter: 3, upAfter: 2)
        // A fixed pseudo-random sequence: 1% failures, scattered.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        var failures = 0
        for _ in 0..<20_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let fails = (seed >> 33) % 100 == 0
            failures += fails ? 1 : 0
            #expect(health.record(success: !fails) == nil)
        }
        #expect(failures > 100, "the sequence really failed some probes")
        var probes = 0
        while health.state == .up {
            health.record(success: false)
            probes += 1
        }
        #expect(probes == 3)
    }
}

@Suite struct RouteRankingTests {
    static let frankfurt = GeoLocation(latitude: 50.11, longitude: 8.68)
    static let virginia = GeoLocation(latitude: 38.9, longitude: -77.0)
    static let singapore = GeoLocation(latitude: 1.35, longitude: 103.8)

    func regions(downOrDraining: Set<String> = []) -> [RouteRanking.Candidate] {
        [
            .init(name: "eu", location: Self.frankfurt, clientNetworks: [IPv4Network("10.0.0.0/8")!, IPv4Network("10.1.0.0/16")!],
                  available: !downOrDraining.contains("eu")),
            .init(name: "us", location: Self.virginia, clientNetworks: [IPv4Network("10.2.0.0/16")!], available: !downOrDraining.contains("us")),
            .init(name: "ap", location: Self.singapore, clientNetworks: [IPv4Network("10.3.0.0/16")!], available: !downOrDraining.contains("ap")),
        ]
    }

    @Test func theClientsNetworkRegionFirstThenTheOthersByDistance() {
        #expect(RouteRanking.rank(regions(), for: .init(address: IPv4Address("10.1.9.9"))) == ["eu", "us", "ap"])
        #expect(RouteRanking.rank(regions(), for: .init(address: IPv4Address("10.2.3.4"))) == ["us", "eu", "ap"], "longest prefix wins over eu's 10/8")
        #expect(RouteRanking.rank(regions(), for: .init(address: IPv4Address("10.3.0.1"))) == ["ap", "eu", "us"])
        #expect(RouteRanking.rank(regions(), for: .init(address: IPv4Address("192.168.0.1"))) == ["eu", "us", "ap"], "unknown: the file's order")
    }

    @Test func aDeclaredLocationOrAHintDecides() {
        let tokyo = GeoLocation(latitude: 35.68, longitude: 139.69)
        #expect(RouteRanking.rank(regions(), for: .init(location: tokyo)) == ["ap", "eu", "us"])
        #expect(RouteRanking.rank(regions(), for: .init(address: IPv4Address("10.1.0.1"), hint: "ap")) == ["ap", "eu", "us"])
        #expect(RouteRanking.rank(regions(), for: .init(hint: "nowhere")) == ["eu", "us", "ap"])
    }

    @Test func regionsDownOrDrainingAreLeftOut() {
        #expect(RouteRanking.rank(regions(downOrDraining: ["us"]), for: .init(address: IPv4Address("10.2.3.4"))) == ["eu", "ap"])
        #expect(RouteRanking.rank(regions(downOrDraining: ["eu", "us", "ap"]), for: .init(address: IPv4Address("10.1.0.1"))).isEmpty)
    }

    @Test func addressesAndNetworksParseStrictly() {
        #expect(IPv4Address("10.1.2") == nil && IPv4Address("10.1.2.300") == nil && IPv4Address("a.b.c.d") == nil)
        #expect(IPv4Network("10.0.0.0/33") == nil && IPv4Network("10.0.0.0") == nil)
        #expect(IPv4Network("0.0.0.0/0")!.contains(IPv4Address("8.8.8.8")!))
        #expect(RouteRanking.distanceKm(Self.frankfurt, Self.virginia) > 6_000 && RouteRanking.distanceKm(Self.frankfurt, Self.virginia) < 7_000)
    }
}

@Suite struct SlowCheckGraceTests {
    @Test func aTimeoutSoonAfterAnOkIsSlowAndStillServesThenFailsAfterTheGrace() {
        var grace = SlowCheckGrace(graceMilliseconds: 10_000)
        #expect(grace.read("redis", outcome: "redis did not answer in time", timedOut: true, now: 1_000) == "redis did not answer in time",
                "never ok yet: a timeout is a failure")
        #expect(grace.read("redis", outcome: "ok", timedOut: false, now: 2_000) == "ok")
        let slow = grace.read("redis", outcome: "redis did not answer in time", timedOut: true, now: 11_000)
        #expect(slow == "slow: redis did not answer in time")
        #expect(SlowCheckGrace.serves(slow))
        let late = grace.read("redis", outcome: "redis did not answer in time", timedOut: true, now: 12_001)
        #expect(late == "redis did not answer in time", "10 s after the last ok the timeout is a failure")
        #expect(!SlowCheckGrace.serves(late))
        #expect(grace.read("redis", outcome: "ok", timedOut: false, now: 12_500) == "ok")
        #expect(grace.read("redis", outcome: "connection refused", timedOut: false, now: 12_600) == "connection refused",
                "a failure that is not a timeout fails at once")
        #expect(grace.read("logic a", outcome: "deadline exceeded", timedOut: true, now: 12_700) == "deadline exceeded",
                "each check has its own last ok")
    }

    @Test func aGateWithASlowCheckIsHealthyButSlow() {
        let report = GateHealthReport(region: "eu", gate: "g", redis: "slow: late", logic: ["a": "ok", "b": "refused"])
        #expect(report.healthy && report.slow)
        let down = GateHealthReport(region: "eu", gate: "g", redis: "ok", logic: ["a": "refused"])
        #expect(!down.healthy && !down.slow)
    }
}
