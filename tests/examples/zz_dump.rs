fn main() {
    let rules = e2e::mixed::typical_10();
    let cfg = filter_programs::ruleset::parse(&e2e::mixed::config(&rules, "lo")).unwrap();
    let c = filter_programs::ruleset::compile(&cfg.rules, filter_programs::ruleset::Verdict::Pass).unwrap();
    for p in &c.programs {
        println!("{}", filter_programs::ebpf::disasm::disassemble(p).unwrap_or_default());
    }
}
