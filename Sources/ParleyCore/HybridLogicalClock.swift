import Synchronization

/// A hybrid logical clock timestamp: milliseconds since 1970 in the high 48
/// bits, a logical counter in the low 16.
///
/// Ordering by `HLC` orders causally related events correctly even when the
/// regions' wall clocks disagree: a region that receives a timestamp from the
/// future moves its own clock past it.
public struct HLC: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(milliseconds: UInt64, counter: UInt16) {
        self.rawValue = (milliseconds << 16) | UInt64(counter)
    }

    public var milliseconds: UInt64 { rawValue >> 16 }
    public var counter: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    public static func < (lhs: HLC, rhs: HLC) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(milliseconds).\(counter)" }
}

/// The pure state of a hybrid logical clock: time in, timestamp out.
public struct HybridLogicalClockState: Sendable {
    public private(set) var last: HLC

    public init(last: HLC = HLC(rawValue: 0)) { self.last = last }

    /// A timestamp for a local event, strictly greater than every earlier one.
    public mutating func now(physicalMilliseconds: UInt64) -> HLC {
        if physicalMilliseconds > last.milliseconds {
            last = HLC(milliseconds: physicalMilliseconds, counter: 0)
        } else {
            last = Self.successor(of: last)
        }
        return last
    }

    /// Moves the clock past a timestamp seen in a remote event.
    public mutating func observe(_ remote: HLC, physicalMilliseconds: UInt64) {
        let floor = max(last, remote)
        if physicalMilliseconds > floor.milliseconds {
            last = HLC(milliseconds: physicalMilliseconds, counter: 0)
        } else {
            last = Self.successor(of: floor)
        }
    }

    private static func successor(of hlc: HLC) -> HLC {
        // A full counter borrows the next millisecond rather than wrapping.
        hlc.counter == .max
            ? HLC(milliseconds: hlc.milliseconds + 1, counter: 0)
            : HLC(rawValue: hlc.rawValue + 1)
    }
}

/// A thread-safe hybrid logical clock over an injectable physical clock, so
/// tests can skew one region's time.
public final class HybridLogicalClock: Sendable {
    private let state: Mutex<HybridLogicalClockState>
    private let physical: @Sendable () -> UInt64

    public init(physical: @escaping @Sendable () -> UInt64 = HybridLogicalClock.systemMilliseconds) {
        self.physical = physical
        self.state = Mutex(HybridLogicalClockState())
    }

    public func now() -> HLC {
        let ms = physical()
        return state.withLock { $0.now(physicalMilliseconds: ms) }
    }

    public func observe(_ remote: HLC) {
        let ms = physical()
        state.withLock { $0.observe(remote, physicalMilliseconds: ms) }
    }

    @Sendable public static func systemMilliseconds() -> UInt64 { WallClock.milliseconds() }
}

/// Wall-clock time without Foundation.
public enum WallClock {
    public static func milliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
