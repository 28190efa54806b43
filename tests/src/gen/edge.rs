//! Hand-written classic programs at the boundary of every validation rule,
//! for the kernel and libpcap oracle tests. Each case is named so that a
//! disagreement says which boundary moved.

use filter_programs::cbpf::skf::{Ancillary, SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};
use filter_programs::cbpf::{Insn, MAXINSNS};

pub struct Case {
    pub name: String,
    pub prog: Vec<Insn>,
}

fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::new(code, jt, jf, k)
}

const RET0: Insn = Insn::new(0x06, 0, 0, 0);
const RET_A: Insn = Insn::new(0x16, 0, 0, 0);
const LD_IMM: Insn = Insn::new(0x00, 0, 0, 1);
const LD_W1: Insn = Insn::new(0x20, 0, 0, 1);

/// Every edge case, in a fixed order.
pub fn edge_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name: String, prog: Vec<Insn>| out.push(Case { name, prog });
    lengths(&mut add);
    opcodes(&mut add);
    scratch(&mut add);
    alu(&mut add);
    ancillary(&mut add);
    jumps(&mut add);
    uninitialized(&mut add);
    conversion(&mut add);
    out
}

type Add<'a> = dyn FnMut(String, Vec<Insn>) + 'a;

fn lengths(add: &mut Add) {
    add("empty".into(), vec![]);
    add("ret only".into(), vec![RET0]);
    for len in [MAXINSNS - 1, MAXINSNS, MAXINSNS + 1] {
        let mut p = vec![LD_IMM; len - 1];
        p.push(RET_A);
        add(format!("{len} instructions"), p);
    }
    let mut p = vec![LD_IMM; MAXINSNS];
    p[0] = RET0;
    add("4096 instructions, last not ret".into(), p);
}

fn opcodes(add: &mut Add) {
    // Every low-byte code before a ret, with a k no rule objects to...
    for code in 0u16..=0xff {
        add(
            format!("code {code:#04x} then ret"),
            vec![i(code, 0, 0, 1), RET0],
        );
    }
    // ...and every low-byte code as the whole program (the final-ret rule).
    for code in 0u16..=0xff {
        add(format!("code {code:#04x} alone"), vec![i(code, 0, 0, 0)]);
    }
    // Garbage above the low byte, on a ret and on a load.
    for high in [0x100u16, 0x200, 0x800, 0x1000, 0x8000, 0xff00] {
        add(
            format!("ret #0 with high bits {high:#06x}"),
            vec![i(0x06 | high, 0, 0, 0)],
        );
        add(
            format!("ldh [12] with high bits {high:#06x}"),
            vec![i(0x28 | high, 0, 0, 12), RET0],
        );
    }
    add("ret x".into(), vec![i(0x0e, 0, 0, 0)]);
    add("ret with rval bits 0x18".into(), vec![i(0x1e, 0, 0, 0)]);
    add("ret a after ld len".into(), vec![i(0x80, 0, 0, 0), RET_A]);
    add("ldh len".into(), vec![i(0x88, 0, 0, 0), RET_A]);
    add("ldb len".into(), vec![i(0x90, 0, 0, 0), RET_A]);
    add(
        "ldx [k] (seccomp only)".into(),
        vec![i(0x21, 0, 0, 0), RET0],
    );
    add("ldxh msh".into(), vec![i(0xa9, 0, 0, 14), RET0]);
    add("ld msh".into(), vec![i(0xb0, 0, 0, 14), RET0]);
}

fn scratch(add: &mut Add) {
    for (name, code) in [
        ("ld M[]", 0x60u16),
        ("ldx M[]", 0x61),
        ("st M[]", 0x02),
        ("stx M[]", 0x03),
    ] {
        for k in [0u32, 15, 16, 17, u32::MAX] {
            add(
                format!("{name} k={k} after st"),
                vec![i(0x02, 0, 0, k.min(15)), i(code, 0, 0, k), RET0],
            );
        }
    }
}

fn alu(add: &mut Add) {
    for (name, code) in [("lsh", 0x64u16), ("rsh", 0x74)] {
        for k in [0u32, 1, 31, 32, 33, u32::MAX] {
            add(format!("{name} #{k}"), vec![i(code, 0, 0, k), RET_A]);
        }
        add(
            format!("{name} x with k=40"),
            vec![i(code | 0x08, 0, 0, 40), RET_A],
        );
    }
    for (name, code) in [("div", 0x34u16), ("mod", 0x94)] {
        for k in [0u32, 1, u32::MAX] {
            add(format!("{name} #{k}"), vec![i(code, 0, 0, k), RET_A]);
        }
        add(
            format!("{name} x (k=0 unused)"),
            vec![i(code | 0x08, 0, 0, 0), RET_A],
        );
    }
    add("neg".into(), vec![i(0x84, 0, 0, 0), RET_A]);
    add("neg x".into(), vec![i(0x8c, 0, 0, 0), RET_A]);
}

fn ancillary(add: &mut Add) {
    let ad = SKF_AD_OFF as u32;
    // Every offset in and just past the known range, for each load size.
    for n in 0u32..0x48 {
        for (size, code) in [("w", 0x20u16), ("h", 0x28), ("b", 0x30)] {
            let known = Ancillary::from_k(ad + n).map_or("unknown", |a| a.name());
            add(
                format!("ld{size} [SKF_AD_OFF+{n}] ({known})"),
                vec![i(code, 0, 0, ad + n), RET_A],
            );
        }
    }
    let bases = [
        ("SKF_AD_OFF-1", ad.wrapping_sub(1)),
        ("SKF_AD_OFF+0xfff", ad + 0xfff),
        ("0xffffffff", u32::MAX),
        ("SKF_NET_OFF", SKF_NET_OFF as u32),
        ("SKF_NET_OFF-1", SKF_NET_OFF as u32 - 1),
        ("SKF_NET_OFF+20", SKF_NET_OFF as u32 + 20),
        ("SKF_LL_OFF", SKF_LL_OFF as u32),
        ("SKF_LL_OFF-1", SKF_LL_OFF as u32 - 1),
        ("SKF_LL_OFF+12", SKF_LL_OFF as u32 + 12),
        ("0x80000000", 0x8000_0000),
        ("0x7fffffff", 0x7fff_ffff),
        ("32768", 32768),
    ];
    for (name, k) in bases {
        add(format!("ld [{name}]"), vec![i(0x20, 0, 0, k), RET_A]);
        add(format!("ldb [x+{name}]"), vec![i(0x50, 0, 0, k), RET_A]);
        add(format!("ldxb msh [{name}]"), vec![i(0xb1, 0, 0, k), RET0]);
    }
    for n in [0u32, 64, 0xfff] {
        add(
            format!("ld [x+SKF_AD_OFF+{n}]"),
            vec![i(0x40, 0, 0, ad + n), RET_A],
        );
    }
}

fn jumps(add: &mut Add) {
    for k in 0u32..=3 {
        add(
            format!("ja {k} in 4"),
            vec![i(0x05, 0, 0, k), RET0, RET0, RET0],
        );
    }
    for k in [u32::MAX, u32::MAX - 1, 0x8000_0000] {
        add(format!("ja {k:#x}"), vec![i(0x05, 0, 0, k), RET0]);
    }
    for (jt, jf) in [(0u8, 0u8), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2), (255, 0)] {
        add(
            format!("jeq jt={jt} jf={jf} in 3"),
            vec![i(0x15, jt, jf, 0), RET0, RET0],
        );
    }
    let mut long = vec![i(0x15, 255, 0, 0)];
    long.extend(vec![RET0; 256]);
    add("jeq jt=255 landing on the last".into(), long.clone());
    long.pop();
    add("jeq jt=255 one past the last".into(), long);
    for code in [0x1du16, 0x25, 0x35, 0x45] {
        add(
            format!("jmp {code:#x} jt=1 jf=1"),
            vec![i(code, 1, 1, 0), RET0, RET0],
        );
    }
    add("ja in last place".into(), vec![RET0, i(0x05, 0, 0, 0)]);
}

fn uninitialized(add: &mut Add) {
    add(
        "ld M[0] never written".into(),
        vec![i(0x60, 0, 0, 0), RET_A],
    );
    add(
        "ldx M[15] never written".into(),
        vec![i(0x61, 0, 0, 15), RET_A],
    );
    add(
        "st then ld".into(),
        vec![i(0x02, 0, 0, 4), i(0x60, 0, 0, 4), RET_A],
    );
    add(
        "stx then ldx".into(),
        vec![i(0x03, 0, 0, 4), i(0x61, 0, 0, 4), RET_A],
    );
    add(
        "st M[4] then ld M[5]".into(),
        vec![i(0x02, 0, 0, 4), i(0x60, 0, 0, 5), RET_A],
    );
    // jeq #0 jt 0 jf 1: the jf path skips the store.
    add(
        "written on the jt branch only".into(),
        vec![i(0x15, 0, 1, 0), i(0x02, 0, 0, 3), i(0x60, 0, 0, 3), RET_A],
    );
    add(
        "written on both branches".into(),
        vec![
            i(0x15, 0, 2, 0),
            i(0x02, 0, 0, 3),
            i(0x05, 0, 0, 1),
            i(0x03, 0, 0, 3),
            i(0x60, 0, 0, 3),
            RET_A,
        ],
    );
    add(
        "written before the branch".into(),
        vec![
            i(0x02, 0, 0, 3),
            i(0x15, 0, 1, 0),
            i(0x00, 0, 0, 1),
            i(0x60, 0, 0, 3),
            RET_A,
        ],
    );
    add(
        "read after ret, written before".into(),
        vec![i(0x02, 0, 0, 1), RET0, i(0x60, 0, 0, 1), RET_A],
    );
    add(
        "read after ret, never written".into(),
        vec![RET0, i(0x60, 0, 0, 1), RET_A],
    );
    add(
        "read after ja, unreachable".into(),
        vec![i(0x05, 0, 0, 1), i(0x60, 0, 0, 9), RET_A],
    );
    add(
        "ja skips the store".into(),
        vec![i(0x05, 0, 0, 1), i(0x02, 0, 0, 9), i(0x60, 0, 0, 9), RET_A],
    );
    add(
        "jset jf lands on the read, jt writes".into(),
        vec![i(0x45, 0, 1, 1), i(0x02, 0, 0, 2), i(0x61, 0, 0, 2), RET_A],
    );
}

/// `ja` over loads whose eBPF translation is near the 32767 offset limit.
/// `filler` instructions of each kind, then `ld [1]` (14 eBPF each) and
/// `ld #1` (1 each) to reach exactly 32767, and once more one past it.
fn conversion(add: &mut Add) {
    let kinds: [(&str, Insn, u64); 16] = [
        ("ld [1]", LD_W1, 14),
        ("ld [0]", i(0x20, 0, 0, 0), 13),
        ("ldb [7]", i(0x30, 0, 0, 7), 13),
        ("ldh [40000]", i(0x28, 0, 0, 40000), 16),
        ("ld [SKF_NET_OFF]", i(0x20, 0, 0, SKF_NET_OFF as u32), 8),
        ("ld [x+0]", i(0x40, 0, 0, 0), 8),
        ("ld [x+3]", i(0x40, 0, 0, 3), 9),
        ("ldxb msh [14]", i(0xb1, 0, 0, 14), 19),
        ("div x", i(0x3c, 0, 0, 0), 5),
        ("ret #1", i(0x06, 0, 0, 1), 2),
        ("jset #0x80000000 jt 0 jf 0", i(0x45, 0, 0, 0x8000_0000), 2),
        ("jset #1 jt 0 jf 0", i(0x45, 0, 0, 1), 1),
        ("ld #proto", i(0x28, 0, 0, Ancillary::Protocol.k()), 2),
        ("ld #ifidx", i(0x20, 0, 0, Ancillary::IfIndex.k()), 4),
        (
            "ld #vlan_avail",
            i(0x30, 0, 0, Ancillary::VlanTagPresent.k()),
            3,
        ),
        ("ld #rand", i(0x20, 0, 0, Ancillary::Random.k()), 4),
    ];
    for (name, insn, ebpf) in kinds {
        for over in [false, true] {
            let copies = 200u64;
            let rest = 32767 - copies * ebpf + u64::from(over);
            let (big, small) = (rest / 14, rest % 14);
            let mut body = vec![insn; copies as usize];
            body.extend(vec![LD_W1; big as usize]);
            body.extend(vec![LD_IMM; small as usize]);
            let mut p = vec![i(0x05, 0, 0, body.len() as u32)];
            p.extend(body);
            p.push(RET_A);
            let side = if over {
                "32768: one past"
            } else {
                "32767: fits"
            };
            add(format!("ja over 200 x {name} to {side}"), p);
        }
    }
}
