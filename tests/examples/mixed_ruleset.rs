//! Writes a filterd config of issue 17's mixed realistic ruleset to
//! standard output (see `e2e::mixed`):
//!
//! ```text
//! cargo run -q -p e2e --example mixed_ruleset -- 10000 > configs/mixed-10k.toml
//! ```
//!
//! Arguments: the rule count (default 10,000) and the interface (default
//! `lo`, so that `filterd check` finds it on any host). With `MIX=shapes`
//! the rules are of many shapes (`e2e::mixed::many_shapes`: most go to
//! the per-field bitmaps).

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = match args.next().map(|a| a.parse()) {
        None => 10_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("mixed_ruleset: the rule count: {e}");
            std::process::exit(2);
        }
    };
    let iface = args.next().unwrap_or_else(|| "lo".into());
    let rules = match std::env::var("MIX").as_deref() {
        Ok("shapes") => e2e::mixed::many_shapes(n, e2e::mixed::EXAMPLE_SEED),
        _ => e2e::mixed::rules(n, e2e::mixed::EXAMPLE_SEED, 0),
    };
    print!("{}", e2e::mixed::config(&rules, &iface));
}
