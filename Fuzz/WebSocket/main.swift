import ParleyFuzzTargets

/// libFuzzer target (ops/fuzz): `FuzzTargets.webSocket`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocket(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    _ = FuzzTargets.webSocket(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
