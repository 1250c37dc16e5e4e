import ParleyFuzzTargets

/// libFuzzer target (ops/fuzz): `FuzzTargets.frameMessage`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameMessage(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    _ = FuzzTargets.frameMessage(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
