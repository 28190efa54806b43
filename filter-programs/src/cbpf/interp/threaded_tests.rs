//! The compiled form (`run`) against the dispatch loop (`run_loop`) and
//! the plain trace, on programs shaped like libpcap's output: the shapes
//! `threaded.rs` fuses (load + `and` + jump, msh + indexed load + jump,
//! `jeq` chains with one target, `jge`/`jgt` ranges, jumps to `ret`),
//! with jumps that land in the middle of every fused sequence.

use super::*;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Constants that the packets below (bytes 0..=3, or 0x11) often match,
/// plus the edges of the unsigned range.
const KS: [u32; 12] = [
    0,
    1,
    2,
    3,
    0x11,
    0x101,
    0x102,
    0x203,
    0x0101_0101,
    0x0102_0300,
    0xffff_ff00,
    u32::MAX,
];

fn jump(code: u16, jt: usize, jf: usize, k: u32) -> Insn {
    Insn::new(code, jt.min(255) as u8, jf.min(255) as u8, k)
}

/// A random program of `n` instructions, ending with a return.
fn program(rng: &mut Rng, n: usize) -> Vec<Insn> {
    let mut p = Vec::with_capacity(n);
    while p.len() < n - 1 {
        let i = p.len();
        // Relative offset of a random forward target within the program.
        let fwd = |rng: &mut Rng| rng.below((n - i - 1) as u64) as usize;
        let k = rng.pick(&KS);
        match rng.below(22) {
            0 => p.push(Insn::new(0x30, 0, 0, rng.below(24) as u32)), // ldb [k]
            1 => p.push(Insn::new(0x28, 0, 0, rng.below(24) as u32)), // ldh [k]
            2 => p.push(Insn::new(0x20, 0, 0, rng.below(24) as u32)), // ld [k]
            3 => p.push(Insn::new(0x50, 0, 0, rng.below(12) as u32)), // ldb [x+k]
            4 => p.push(Insn::new(0x48, 0, 0, rng.below(12) as u32)), // ldh [x+k]
            5 => p.push(Insn::new(0x40, 0, 0, rng.below(12) as u32)), // ld [x+k]
            6 => p.push(Insn::new(0xb1, 0, 0, rng.below(20) as u32)), // ldxb msh
            7 => p.push(Insn::new(0x54, 0, 0, k)),                    // and #k
            8 => p.push(jump(0x15, fwd(rng), fwd(rng), k)),           // jeq
            9 => p.push(jump(0x25, fwd(rng), fwd(rng), k)),           // jgt
            10 => p.push(jump(0x35, fwd(rng), fwd(rng), k)),          // jge
            11 => p.push(jump(0x45, fwd(rng), fwd(rng), k)),          // jset
            12 => {
                // A jeq chain whose hits all go to one place.
                let len = 1 + rng.below(6) as usize;
                let hit = i + 1 + len + fwd(rng);
                for j in 0..len.min(n - 1 - p.len()) {
                    let at = i + j;
                    let f = if j + 1 == len { fwd(rng) } else { 0 };
                    p.push(jump(0x15, hit.saturating_sub(at + 1), f, rng.pick(&KS)));
                }
            }
            13 if p.len() + 2 < n => {
                // jge #lo; jgt #hi, both misses to one place.
                let (lo, hi) = (rng.pick(&KS), rng.pick(&KS));
                let miss = fwd(rng) + 2;
                p.push(jump(0x35, 0, miss, lo));
                p.push(jump(0x25, miss - 1, fwd(rng).saturating_sub(1), hi));
            }
            14 => p.push(Insn::new(0x06, 0, 0, rng.pick(&[0, 1, 262_144]))), // ret #k
            15 => p.push(Insn::new(0x16, 0, 0, 0)),                          // ret a
            16 => p.push(Insn::new(0x05, 0, 0, fwd(rng) as u32)),            // ja
            17 => p.push(Insn::new(rng.pick(&[0x07, 0x87, 0x01]), 0, 0, k)), // tax, txa, ldx #k
            18 => {
                let slot = rng.below(16) as u32;
                p.push(Insn::new(rng.pick(&[0x02, 0x03, 0x60, 0x61]), 0, 0, slot));
            }
            19 | 20 => or_pair(rng, &mut p, n),
            _ => p.push(Insn::new(
                rng.pick(&[0x04, 0x14, 0x34, 0x94, 0x0c]),
                0,
                0,
                k,
            )),
        }
    }
    p.truncate(n - 1);
    p.push(Insn::new(0x16, 0, 0, 0));
    p
}

/// libpcap's `src or dst` shape, which `threaded.rs` runs as one node:
/// a load (absolute, indexed, or msh then indexed), maybe an `and #k`,
/// then `jeq` or a `jge`/`jgt` range hitting to `H`; on a miss the same
/// kind of load and test, hitting to `H` too, else to `F`. Pushes
/// nothing when it does not fit before the final return.
fn or_pair(rng: &mut Rng, p: &mut Vec<Insn>, n: usize) {
    let (abs, ind) = rng.pick(&[(0x20u16, 0x40u16), (0x28, 0x48), (0x30, 0x50)]);
    let kind = rng.below(3); // absolute, indexed, msh + indexed
    let mask = (rng.below(2) == 1).then(|| rng.pick(&KS));
    let range = rng.below(2) == 1;
    let test_len = if range { 2 } else { 1 };
    let half = 1 + usize::from(mask.is_some()) + test_len;
    let end = p.len() + usize::from(kind == 2) + 2 * half;
    if end >= n {
        return;
    }
    let hit = end + rng.below((n - end) as u64) as usize;
    let miss = end + rng.below((n - end) as u64) as usize;
    if kind == 2 {
        p.push(Insn::new(0xb1, 0, 0, rng.below(8) as u32));
    }
    for second in [false, true] {
        let code = if kind == 0 { abs } else { ind };
        let off = rng.below(if kind == 0 { 24 } else { 12 }) as u32;
        p.push(Insn::new(code, 0, 0, off));
        if let Some(m) = mask {
            p.push(Insn::new(0x54, 0, 0, m));
        }
        let (a, b) = (rng.pick(&KS), rng.pick(&KS));
        let at = p.len();
        // The first test misses to the second load, right after it.
        let out = if second { miss } else { at + test_len };
        if range {
            p.push(jump(0x35, 0, out - at - 1, a.min(b)));
            p.push(jump(0x25, out - at - 2, hit - at - 2, a.max(b)));
        } else {
            p.push(jump(0x15, hit - at - 1, out - at - 1, a));
        }
    }
}

fn packet(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(30) as usize;
    (0..len).map(|_| rng.pick(&[0u8, 1, 2, 3, 0x11])).collect()
}

#[test]
fn compiled_form_matches_the_loop_on_libpcap_shaped_programs() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut compiled, mut chains, mut ranges) = (0, 0, 0);
    let eithers_before = threaded::EITHERS.with(|n| n.get());
    for _ in 0..20_000 {
        let n = 2 + rng.below(30) as usize;
        let insns = program(&mut rng, n);
        let p = Program::new_unvalidated(&insns);
        compiled += usize::from(p.threaded.is_some());
        for j in 0..p.plain.len() {
            match threaded::cond_at(&p.plain, j) {
                Some((threaded::Cond::In(_), ..)) => chains += 1,
                Some((threaded::Cond::Range(_), ..)) => ranges += 1,
                _ => {}
            }
        }
        for _ in 0..8 {
            let pkt = packet(&mut rng);
            let wire = pkt.len() as u32 + rng.below(3) as u32;
            let loop_v = p.run_loop(&pkt, wire);
            assert_eq!(p.run(&pkt, wire), loop_v, "{insns:?} on {pkt:?}");
            assert_eq!(p.trace(&pkt, wire).0, loop_v, "{insns:?} on {pkt:?}");
        }
    }
    // Nearly all of them: only programs with a backward ja are left out.
    assert!(compiled > 19_000, "only {compiled} compiled");
    // The generator does reach the folded shapes.
    let eithers = threaded::EITHERS.with(|n| n.get()) - eithers_before;
    assert!(
        chains > 5_000 && ranges > 2_000 && eithers > 5_000,
        "{chains} chains, {ranges} ranges, {eithers} src-or-dst pairs"
    );
}

#[test]
fn jeq_chain_range_and_msh_fusions() {
    // ldh [0]; jeq 1 / 2 / 3 -> ret 7; else ret 9.
    let chain = [
        Insn::new(0x28, 0, 0, 0),
        Insn::new(0x15, 2, 0, 1),
        Insn::new(0x15, 1, 0, 2),
        Insn::new(0x15, 0, 1, 3),
        Insn::new(0x06, 0, 0, 7),
        Insn::new(0x06, 0, 0, 9),
    ];
    let p = Program::new(&chain).expect("valid");
    for (pkt, want) in [
        (&[0u8, 1][..], 7),
        (&[0, 2], 7),
        (&[0, 3], 7),
        (&[0, 4], 9),
        (&[1, 1], 9),
        (&[0], 0),
    ] {
        assert_eq!(p.run(pkt, 2), want, "{pkt:?}");
        assert_eq!(p.run_loop(pkt, 2), want, "{pkt:?}");
    }
    // ldb [0]; jge #10; jgt #20: inside -> 1, outside -> 2, at each edge.
    let range = [
        Insn::new(0x30, 0, 0, 0),
        Insn::new(0x35, 0, 1, 10),
        Insn::new(0x25, 0, 1, 20),
        Insn::new(0x06, 0, 0, 2),
        Insn::new(0x06, 0, 0, 1),
    ];
    let p = Program::new(&range).expect("valid");
    for (b, want) in [(0u8, 2), (9, 2), (10, 1), (20, 1), (21, 2), (255, 2)] {
        assert_eq!(p.run(&[b], 1), want, "{b}");
    }
    // ldxb 4*([0]&0xf); ldh [x+1]; jeq #0x0203: the msh or the load can
    // each run past the capture.
    let msh = [
        Insn::new(0xb1, 0, 0, 0),
        Insn::new(0x48, 0, 0, 1),
        Insn::new(0x15, 0, 1, 0x0203),
        Insn::new(0x06, 0, 0, 1),
        Insn::new(0x06, 0, 0, 2),
    ];
    let p = Program::new(&msh).expect("valid");
    for (pkt, want) in [
        (&[1u8, 0, 0, 0, 0, 2, 3][..], 1),
        (&[1, 0, 0, 0, 0, 2, 4], 2),
        (&[1, 0, 0, 0, 0, 2], 0),
        (&[], 0),
    ] {
        assert_eq!(p.run(pkt, 7), want, "{pkt:?}");
        assert_eq!(p.run_loop(pkt, 7), want, "{pkt:?}");
    }
}

#[test]
fn src_or_dst_pairs() {
    // ld [0]; jeq #0x0a000001 -> ret 1; ld [8]; jeq #0x0a000001 -> ret 1;
    // ret 2. Both targets constant (the branch-free form), then with the
    // hit going on to another op (the jumping form).
    for hit in [0x06u16, 0x16] {
        let pair = [
            Insn::new(0x20, 0, 0, 0),
            Insn::new(0x15, 2, 0, 0x0a00_0001),
            Insn::new(0x20, 0, 0, 8),
            Insn::new(0x15, 0, 1, 0x0a00_0001),
            Insn::new(hit, 0, 0, 1),
            Insn::new(0x06, 0, 0, 2),
        ];
        let p = Program::new(&pair).expect("valid");
        let ret_a = hit == 0x16;
        for (pkt, want) in [
            // A hit on the first load stands even though the second
            // falls past the capture.
            (&[10u8, 0, 0, 1][..], if ret_a { 0x0a00_0001 } else { 1 }),
            (&[10, 0, 0, 2], 0),
            (
                &[10, 0, 0, 2, 0, 0, 0, 0, 10, 0, 0, 1],
                if ret_a { 0x0a00_0001 } else { 1 },
            ),
            (&[10, 0, 0, 2, 0, 0, 0, 0, 10, 0, 0, 3], 2),
            (&[10, 0, 0], 0),
        ] {
            assert_eq!(p.run(pkt, 64), want, "{pkt:?}");
            assert_eq!(p.run_loop(pkt, 64), want, "{pkt:?}");
        }
    }
}

/// Runs `f` on a thread with a `kib` KiB stack: an overflow aborts the
/// whole test binary, so a pass means it fit.
fn on_small_stack<R: Send + 'static>(kib: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(kib << 10)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// `n` instructions: `ld [0]; jeq #7` pairs whose miss falls through to
/// the next pair (every executed pair is one more nested node), then
/// `ret a`.
fn branch_chain(n: usize) -> Vec<Insn> {
    let mut p = Vec::new();
    while p.len() + 3 <= n {
        p.push(Insn::new(0x20, 0, 0, 0));
        // A hit jumps as far ahead as a jump can, staying in the program.
        let jt = (n - 2 - p.len()).min(255) as u8;
        p.push(Insn::new(0x15, jt, 0, 7));
    }
    p.resize(n - 1, Insn::new(0x04, 0, 0, 1));
    p.push(Insn::new(0x16, 0, 0, 0));
    p
}

#[test]
fn deep_programs_fit_the_stack() {
    // In a debug build nothing is a tail call and a run nests one frame
    // per executed node (about 300 bytes each, measured); the longest
    // compiled program must leave a wide margin in a default (2 MiB) test
    // thread, so hold it to 1 MiB. Optimized builds turn every transfer
    // into a jump and use constant stack.
    let n = threaded::MAX_OPS;
    for (what, insns) in [
        ("alu chain", {
            let mut p = vec![Insn::new(0x04, 0, 0, 1); n - 1];
            p.push(Insn::new(0x16, 0, 0, 0));
            p
        }),
        ("branch chain", branch_chain(n)),
    ] {
        let (compiled, got, want) = on_small_stack(1024, move || {
            let p = Program::new(&insns).expect("valid");
            let pkt = [0, 0, 0, 0];
            (p.threaded.is_some(), p.run(&pkt, 4), p.run_loop(&pkt, 4))
        });
        assert!(compiled, "{what}");
        assert_eq!(got, want, "{what}");
    }
    // Longer programs (4096 is the kernel's limit, libpcap has none) run
    // on the loop, whose stack use does not grow with the program.
    for n in [n + 1, 4096, 20_000] {
        for insns in [branch_chain(n), {
            let mut p = vec![Insn::new(0x04, 0, 0, 1); n - 1];
            p.push(Insn::new(0x16, 0, 0, 0));
            p
        }] {
            let (compiled, got, want) = on_small_stack(64, move || {
                let p = Program::new(&insns).expect("valid");
                let pkt = [0, 0, 0, 0];
                (p.threaded.is_some(), p.run(&pkt, 4), p.trace(&pkt, 4).0)
            });
            assert!(!compiled, "{n}");
            assert_eq!(got, want, "{n}");
        }
    }
}

#[test]
fn backward_jumps_run_on_the_loop() {
    // A backward ja: the loop, with its step budget.
    let p = Program::new(&[Insn::new(0x05, 0, 0, u32::MAX), Insn::new(0x06, 0, 0, 1)]);
    let p = p.expect("valid for libpcap");
    assert!(p.threaded.is_none());
    assert_eq!(p.run(&[], 0), 0);
}
