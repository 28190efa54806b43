//! cBPF text in tcpdump's three dump formats → parse → validate → our
//! interpreter. Never a panic; what parses prints and parses back to the
//! same program; and where libpcap's interpreter can run the program (and
//! it has no loop, which `bpf_filter` would not bound, and reads no scratch
//! cell it has not written, which `bpf_filter` leaves uninitialized), our
//! interpreter returns what libpcap's returns.

use filter_programs::cbpf::interp::Program;
use filter_programs::cbpf::text::{self, Format};
use filter_programs::cbpf::validate::{validate, RuleSet};
use filter_programs::cbpf::Insn;
use libpcap_oracle::Validated;

use crate::{frames, Outcome};

pub fn check(data: &[u8]) -> Outcome {
    let Ok(src) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let mut parsed = vec![];
    if let Ok(prog) = text::parse(src) {
        parsed.push(prog);
    }
    for format in Format::ALL {
        if let Ok(prog) = text::parse_as(src, format) {
            let printed = text::print(&prog, format);
            let again = text::parse_as(&printed, format)
                .map_err(|e| format!("{format:?}: printed text does not parse: {e}\n{printed}"))?;
            if again != prog {
                return Err(format!("{format:?}: print then parse changes the program"));
            }
            parsed.push(prog);
        }
    }
    for prog in &parsed {
        run(prog)?;
    }
    Ok(())
}

fn run(prog: &[Insn]) -> Outcome {
    // Both rule sets must answer without panicking.
    let kernel_ok = validate(prog, RuleSet::Kernel).is_ok();
    let Ok(ours) = Program::new(prog) else {
        return Ok(());
    };
    let loops = prog.iter().any(|i| i.code == 0x05 && (i.k as i32) < 0);
    // Where a path reads scratch memory it has not written, bpf_filter
    // returns what its stack held; ours starts zeroed.
    let theirs = Validated::new(prog).filter(|v| !loops && v.unwritten_scratch_read().is_none());
    for frame in frames::typical() {
        let wire = frame.len() as u32 + 4;
        let got = ours.run(&frame, wire);
        if let Some(v) = &theirs {
            let want = v.filter(&frame, wire);
            if got != want {
                return Err(format!(
                    "interpreter returns {got}, libpcap {want} (kernel rules pass: {kernel_ok})"
                ));
            }
        }
    }
    Ok(())
}
