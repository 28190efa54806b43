//! Expression text → compile. Never a panic; and where the expression
//! compiles, the optimized program gives the unoptimized one's verdict on
//! every derived packet, whole or cut short of its wire length.

use filter_programs::cbpf::interp::Program;
use filter_programs::codegen::{compile, Dlt, Options};

use crate::{frames, Outcome};

const LINKS: [Dlt; 5] = [Dlt::En10mb, Dlt::Raw, Dlt::Null, Dlt::LinuxSll, Dlt::Ipv6];

/// The first byte picks the link type and whether the program is for a
/// live Linux socket (ancillary loads); the rest is the expression.
pub fn check(data: &[u8]) -> Outcome {
    let Some((&sel, text)) = data.split_first() else {
        return Ok(());
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return Ok(());
    };
    let mut opts = Options::new(LINKS[sel as usize % LINKS.len()]);
    opts.linux_ext = sel & 0x80 != 0;
    opts.optimize = false;
    let Ok(plain) = compile(text, &opts) else {
        return Ok(());
    };
    let plain = Program::new(&plain).map_err(|e| format!("{text:?}: invalid program: {e}"))?;
    opts.optimize = true;
    let optimized = match compile(text, &opts) {
        Ok(p) => Some(Program::new(&p).map_err(|e| format!("{text:?}: optimized invalid: {e}"))?),
        // The optimizer proved no packet matches (pcap_compile's error).
        Err(e) if e.to_string().contains("rejects all packets") => None,
        Err(e) => return Err(format!("{text:?}: compiles only unoptimized: {e}")),
    };
    for frame in frames::with_seed(&frames::hash(data).to_le_bytes()) {
        let wire = frame.len() as u32;
        for cut in [frame.len(), frame.len() / 2] {
            let pkt = &frame[..cut];
            let want = plain.run(pkt, wire);
            let got = optimized.as_ref().map_or(0, |p| p.run(pkt, wire));
            if got != want {
                return Err(format!(
                    "{text:?}: optimized returns {got}, unoptimized {want}, on {pkt:02x?} \
                     (wire length {wire})"
                ));
            }
        }
    }
    Ok(())
}
