#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::run(fuzz_checks::target("expr_compile").expect("a known target"), data)
});
