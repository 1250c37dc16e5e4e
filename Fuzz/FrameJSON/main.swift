import ParleyFuzzTargets

/// libFuzzer target (ops/fuzz): `FuzzTargets.frameJSON`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameJSON(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    _ = FuzzTargets.frameJSON(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
