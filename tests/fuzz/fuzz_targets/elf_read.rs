#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::run(fuzz_checks::target("elf_read").expect("a known target"), data)
});
