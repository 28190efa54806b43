//! Man pages and shell completions, made from a command line's clap
//! definition so that they never drift from its `--help`: `filterd man`,
//! `filterd completions`, and pcap-replay's `--man`/`--completions`;
//! `./x man` and `./x install` call them.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

use crate::file::{Output, OutputError};

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, mut cmd: clap::Command, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes `NAME.1`, and `NAME-SUB.1` for every visible subcommand (and
/// theirs, `NAME-SUB-SUBSUB.1`), into `dir`, each under a temporary name
/// renamed into place. Returns the pages written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, OutputError> {
    let mut cmd = cmd;
    // Global flags (-v, -q) are shown on every page they apply to.
    cmd.build();
    let mut written = Vec::new();
    let name = cmd.get_name().to_string();
    page(cmd, name, dir, &mut written)?;
    Ok(written)
}

fn page(
    cmd: clap::Command,
    name: String,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), OutputError> {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .cloned()
        .collect();
    let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
    let mut roff = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut roff)
        .map_err(OutputError::Write)?;
    let path = dir.join(format!("{name}.1"));
    let (out, mut sink) = Output::create(&path)?;
    sink.write_all(&roff).map_err(OutputError::Write)?;
    out.commit(Some(sink))?;
    written.push(path);
    for sub in subs {
        let sub_name = format!("{name}-{}", sub.get_name());
        page(sub, sub_name, dir, written)?;
    }
    Ok(())
}

/// Makes `dir` and its parents.
pub fn make_dir(dir: &Path) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(|source: io::Error| OutputError::Create {
        path: dir.display().to_string(),
        source,
    })
}
