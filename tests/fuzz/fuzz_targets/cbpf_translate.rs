#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::run(fuzz_checks::target("cbpf_translate").expect("a known target"), data)
});
