import ParleyFuzzTargets

/// libFuzzer target (ops/fuzz builds it with -sanitize=fuzzer -parse-as-library;
/// libFuzzer brings `main`): `FuzzTargets.frameStream`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameStream(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    _ = FuzzTargets.frameStream(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
