//! TOML config text → validate → compile the ruleset: never a panic, and
//! where the config compiles, the compiled XDP program run by our VM (the
//! dry run) decides each frame as the rules taken one by one do.

use filter_programs::ruleset::dryrun::DryRun;
use filter_programs::ruleset::{compile, parse, Verdict};

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
    let Ok(compiled) = compile(&config.rules, default) else {
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
