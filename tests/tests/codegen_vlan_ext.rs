//! `Options::vlan_ext` against libpcap 1.10.3 on a live Linux handle.
//!
//! libpcap compiles `vlan` with BPF extensions (BPF_SPECIAL_VLAN_HANDLING)
//! only on an activated Linux capture, so the oracle here is a live
//! capture on `lo` (Ethernet framing) and `pcap_compile` on it, against
//! our generator with `vlan_ext` and `linux_ext`, the same snap length and
//! netmask (the pcap crate passes 0).
//!
//! - Unoptimized: instruction for instruction, every corpus EN10MB
//!   expression with `vlan` and our own.
//! - Optimized: our optimizer is not libpcap's (see `optimize`'s module
//!   documentation: it keeps loads libpcap's drops, and is a different
//!   algorithm), so the programs are compared by verdict instead: on every
//!   corpus Ethernet packet, run in our interpreter with the kernel's
//!   meaning, once with the outer tag in the bytes and once moved into the
//!   metadata as a packet socket gets it. Ours must give the unoptimized
//!   program's verdict (which is libpcap's, instruction for instruction);
//!   libpcap's optimized program must too, except where its optimizer
//!   disagrees with its own unoptimized code, which is counted and shown.

use std::collections::BTreeSet;
use std::sync::Arc;

use e2e::corpus::{captures, expressions};
use filter_programs::cbpf::interp::{KernelCtx, Program};
use filter_programs::cbpf::Insn;
use filter_programs::codegen::{compile, Dlt, ErrorKind, Options, Resolver};
use libpcap_oracle::resolve::SystemResolver;

const SNAPLEN: i32 = 262_144;

/// Expressions of our own besides the corpus: the metadata `vlan` with
/// what follows it at a run-time offset (IPv4 header length, indexed
/// loads, tunnels, a second tag, PPPoE, MPLS).
const OWN: &[&str] = &[
    "vlan",
    "vlan 100",
    "vlan and ip",
    "vlan 10 and vlan 20 and tcp",
    "ip and vlan",
    "vlan and (arp or ip6)",
    "not vlan and tcp",
    "vlan 100 and udp port 53",
    "vlan and tcp[tcpflags] & tcp-syn != 0",
    "vlan and ip[0] & 0xf > 5",
    "vlan and host 10.0.0.1",
    "vlan and ether host 1:2:3:4:5:6",
    "vlan and (vlan 5 or ip)",
    "(vlan and ip) or arp",
    "vlan and mpls 20 and ip",
    "vlan and pppoes 3 and ip",
    "vlan and geneve and ip",
    "geneve and vlan 7",
    "vlan and ip6 and tcp port 80",
    "vlan and len > 100",
    "vlan 4095",
    "vlan 4096",
    "mpls and vlan",
];

/// The six the task names: these must be supported, not skipped.
const REQUIRED: usize = 6;

fn live_handle() -> pcap::Capture<pcap::Active> {
    pcap::Capture::from_device("lo")
        .and_then(|c| c.snaplen(SNAPLEN).open())
        .expect("a live capture on lo")
}

/// libpcap's program on the live handle, or its error.
fn theirs(
    cap: &pcap::Capture<pcap::Active>,
    expr: &str,
    optimize: bool,
) -> Result<Vec<Insn>, String> {
    let prog = cap.compile(expr, optimize).map_err(|e| e.to_string())?;
    prog.get_instructions()
        .iter()
        .map(|i| {
            // The crate shows an instruction as "code jt jf k".
            let f: Vec<u32> = i
                .to_string()
                .split_whitespace()
                .map(|w| w.parse().map_err(|e| format!("{i}: {e}")))
                .collect::<Result<_, _>>()?;
            match f[..] {
                [code, jt, jf, k] => Ok(Insn::new(code as u16, jt as u8, jf as u8, k)),
                _ => Err(format!("unexpected instruction text {i}")),
            }
        })
        .collect()
}

fn ours(
    expr: &str,
    optimize: bool,
    resolver: &Arc<dyn Resolver>,
) -> Result<Vec<Insn>, filter_programs::codegen::CompileError> {
    let opts = Options {
        snaplen: SNAPLEN as u32,
        netmask: Some(0),
        optimize,
        linux_ext: true,
        vlan_ext: true,
        resolver: Arc::clone(resolver),
        ..Options::new(Dlt::En10mb)
    };
    compile(expr, &opts)
}

/// One packet as the kernel may hand it to a socket filter.
struct View {
    bytes: Vec<u8>,
    wirelen: u32,
    ctx: KernelCtx,
}

/// The packet with its tag in the bytes and, for a tagged one, also as a
/// packet socket gets it: outer tag in the metadata.
fn views(data: &[u8], wirelen: u32) -> Vec<View> {
    let mut out = vec![View {
        bytes: data.to_vec(),
        wirelen,
        ctx: KernelCtx::ethernet(data),
    }];
    let tpid = data.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if matches!(tpid, Some(0x8100 | 0x88a8)) && data.len() >= 18 {
        let bytes = [&data[..12], &data[16..]].concat();
        let ctx = KernelCtx {
            vlan_tpid: u16::from_be_bytes([data[12], data[13]]),
            vlan_tci: u16::from_be_bytes([data[14], data[15]]),
            ..KernelCtx::ethernet(&bytes)
        };
        out.push(View {
            bytes,
            wirelen: wirelen.saturating_sub(4),
            ctx,
        });
    }
    out
}

#[test]
fn vlan_ext_is_libpcaps_live_handle_code() {
    if !e2e::kernel_available("codegen_vlan_ext::vlan_ext_is_libpcaps_live_handle_code") {
        return;
    }
    let cap = live_handle();
    let resolver: Arc<dyn Resolver> = Arc::new(SystemResolver::default());
    let mut exprs: Vec<String> = OWN.iter().map(|s| s.to_string()).collect();
    let mut seen: BTreeSet<String> = exprs.iter().cloned().collect();
    let corpus: Vec<String> = expressions()
        .into_iter()
        .filter(|e| e.dlt == "EN10MB" && e.expr.contains("vlan"))
        .map(|e| e.expr)
        .filter(|e| seen.insert(e.clone()))
        .collect();
    assert!(
        corpus.len() >= 8,
        "only {} corpus vlan expressions",
        corpus.len()
    );
    exprs.extend(corpus.iter().cloned());
    let packets: Vec<View> = captures()
        .iter()
        .filter(|c| c.dlt == 1)
        .flat_map(|c| c.packets.iter())
        .flat_map(|p| views(&p.data, p.wirelen))
        .collect();
    let tagged_views = packets.iter().filter(|v| v.ctx.vlan_present()).count();
    assert!(
        tagged_views > 20,
        "only {tagged_views} tagged corpus packets"
    );

    let (mut identical, mut unsupported, mut both_refuse) = (0, Vec::new(), 0);
    let (mut opt_identical, mut runs, mut libpcap_opt_differs) = (0, 0usize, Vec::new());
    for (n, expr) in exprs.iter().enumerate() {
        let unopt = match ours(expr, false, &resolver) {
            Err(e) if e.kind == ErrorKind::Unsupported => {
                assert!(n >= REQUIRED, "{expr:?} must be supported: {}", e.render());
                unsupported.push(expr.clone());
                continue;
            }
            r => r,
        };
        let want = theirs(&cap, expr, false);
        match (&unopt, &want) {
            (Ok(a), Ok(b)) => assert!(
                a == b,
                "{expr:?}: not libpcap's live unoptimized program\nours:\n{}\nlibpcap:\n{}",
                dump(a),
                dump(b)
            ),
            (Err(a), Err(b)) => {
                assert!(
                    b.contains(a.message()),
                    "{expr:?}: errors differ: {} vs {b}",
                    a.message()
                );
                both_refuse += 1;
                continue;
            }
            _ => panic!("{expr:?}: ours {unopt:?}, libpcap {want:?}"),
        }
        identical += 1;
        let (Ok(unopt), Ok(_)) = (unopt, want) else {
            continue;
        };

        let opt = ours(expr, true, &resolver);
        let lopt = theirs(&cap, expr, true);
        let (opt, lopt) = match (opt, lopt) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(a), Err(b)) => {
                assert!(
                    b.contains(a.message()),
                    "{expr:?} -O: {} vs {b}",
                    a.message()
                );
                continue;
            }
            (a, b) => panic!("{expr:?} optimized: ours {a:?}, libpcap {b:?}"),
        };
        opt_identical += usize::from(opt == lopt);
        let run = |p: &[Insn]| Program::new(p).unwrap_or_else(|e| panic!("{expr:?}: {e:?}"));
        let (ours_opt, reference, libpcap_opt) = (run(&opt), run(&unopt), run(&lopt));
        for v in &packets {
            let verdict = |p: &Program| p.run_with(&v.bytes, v.wirelen, &v.ctx);
            let want = verdict(&reference);
            let got = verdict(&ours_opt);
            assert_eq!(
                got,
                want,
                "{expr:?} -O on {:02x?} (tag in metadata: {})\nours:\n{}",
                v.bytes,
                v.ctx.vlan_present(),
                dump(&opt)
            );
            if verdict(&libpcap_opt) != want {
                libpcap_opt_differs.push(format!(
                    "{expr:?} on {:02x?}",
                    &v.bytes[..v.bytes.len().min(24)]
                ));
            }
            runs += 1;
        }
    }
    eprintln!(
        "{} expressions ({} corpus): {identical} unoptimized programs identical to libpcap's live ones, \
         {both_refuse} refused by both, {} unsupported {unsupported:?}; optimized: {opt_identical} identical, \
         {runs} packet runs ({} packets, {tagged_views} with the tag in metadata) equal to the unoptimized verdict; \
         libpcap's optimized program disagrees with its unoptimized one on {} runs {:?}",
        exprs.len(),
        corpus.len(),
        unsupported.len(),
        packets.len(),
        libpcap_opt_differs.len(),
        libpcap_opt_differs.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        identical >= exprs.len() * 3 / 4,
        "{identical} of {}",
        exprs.len()
    );
    assert!(runs > 10_000, "only {runs} packet runs");
}

fn dump(p: &[Insn]) -> String {
    filter_programs::cbpf::text::print(p, filter_programs::cbpf::text::Format::Asm)
}
