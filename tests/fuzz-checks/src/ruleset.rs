//! TOML config text → validate → compile the ruleset: never a panic, and
//! where the config compiles, the compiled XDP program run by our VM (the
//! dry run) decides each frame as the rules taken one by one do, with the
//! cost model's choice of tables or with every table forced.

use filter_programs::ruleset::compile::{compile_with, Options};
use filter_programs::ruleset::dryrun::DryRun;
use filter_programs::ruleset::{parse, Verdict};

use crate::{frames, Outcome};

pub fn check(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(config) = parse(text) else {
        return Ok(());
    };
    let default = config
        .interfaces
        .first()
        .map_or(Verdict::Pass, |i| i.default);
    // Every other input forces the lookup tables, which the cost model
    // leaves out of most small rulesets, and the cold path's interpreter.
    let opts = match frames::hash(data) & 1 {
        0 => Options::default(),
        _ => Options::forced(),
    };
    let Ok(compiled) = compile_with(&config.rules, default, &opts) else {
        return Ok(());
    };
    let mut run =
        DryRun::new(&compiled, &config.rules, default).map_err(|e| format!("dry run: {e}"))?;
    for frame in frames::with_seed(&frames::hash(data).to_le_bytes()) {
        let wire = frame.len() as u32;
        run.packet(&frame, wire)
            .map_err(|e| format!("{e} on {frame:02x?}"))?;
    }
    Ok(())
}
