//! Our instruction codec and disassembler on code we did not write:
//! small C programs compiled by clang at test time. For every program
//! section: `from_bytes` + `decode_all` take every instruction, encoding
//! the decoded ops gives the same bytes, and our listing has the same
//! instructions, slots and opcode bytes as `llvm-objdump -d` (plus exact
//! text on lines both syntaxes print alike). With bpftool and root, our
//! listing of a translated XDP program matches `bpftool prog dump xlated`
//! line for line except where the verifier rewrites context loads.

mod elf;

use std::path::{Path, PathBuf};
use std::process::Command;

use filter_programs::ebpf::disasm::disassemble;
use filter_programs::ebpf::insn::{decode_all, from_bytes, to_bytes, Op, Reg};

const PRELUDE: &str = r#"
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
typedef unsigned long long u64; typedef long long s64; typedef int s32;
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
struct __sk_buff { u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci,
    vlan_proto, priority, ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid, data, data_end; };
struct map_def { u32 type, key_size, value_size, max_entries, flags; };
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_skb_load_bytes)(const void *skb, u32 off, void *to, u32 len) = (void *)26;
static u32 (*bpf_get_prandom_u32)(void) = (void *)7;
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");
#define SEC(s) __attribute__((section(s), used))
char _license[] SEC("license") = "GPL";
"#;

/// (name, -mcpu, C body).
const PROGRAMS: &[(&str, &str, &str)] = &[
    (
        "xdp_parse_map",
        "v3",
        r#"
struct map_def counts SEC("maps") = { 2, 4, 8, 256, 0 };
SEC("xdp") int xdp_count(struct xdp_md *ctx) {
    u8 *data = (u8 *)(long)ctx->data, *end = (u8 *)(long)ctx->data_end;
    if (data + 34 > end) return 1;
    if (((data[12] << 8) | data[13]) != 0x0800) return 2;
    u32 key = data[23];
    if ((data[14] & 0xf) > 5 && data + 60 <= end) key += data[34 + ((data[14] & 0xf) - 5) * 4 - 4];
    u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v) __sync_fetch_and_add(v, 1);
    return 2;
}"#,
    ),
    (
        "tc_classifier",
        "v3",
        r#"
SEC("classifier") int cls(struct __sk_buff *skb) {
    u16 port;
    if (skb->protocol != __builtin_bswap16(0x0800)) return 0;
    if (bpf_skb_load_bytes(skb, 14 + 20 + 2, &port, 2) < 0) return 2;
    if (__builtin_bswap16(port) == 80) { skb->mark = 0x1234; skb->tc_classid = skb->len >> 3; return 0; }
    return skb->hash % 7 == 3 ? 2 : 0;
}"#,
    ),
    (
        "socket_ld_abs",
        "v2",
        r#"
SEC("socket") int sock(struct __sk_buff *skb) {
    if (load_half(skb, 12) != 0x0800) return 0;
    u32 ihl = (load_byte(skb, 14) & 0xf) * 4;
    if (load_byte(skb, 23) == 6 && load_half(skb, 14 + ihl + 2) == 22) return -1;
    return load_word(skb, 26) == 0x0a000001 ? skb->len : 0;
}"#,
    ),
    (
        "v3_atomics_imm64",
        "v3",
        r#"
struct map_def vals SEC("maps") = { 2, 4, 64, 4, 0 };
SEC("xdp") int atomics(struct xdp_md *ctx) {
    u32 k = 0;
    s64 *v = bpf_map_lookup_elem(&vals, &k);
    if (!v) return 0;
    s64 old = __sync_fetch_and_add(&v[0], 5);
    __sync_fetch_and_or(&v[1], 0x10);
    __sync_fetch_and_xor(&v[2], 3);
    s64 prev = __sync_lock_test_and_set(&v[3], old);
    s64 seen = __sync_val_compare_and_swap(&v[4], prev, 0x1122334455667788LL);
    s32 small = (s32)v[5];
    v[6] = (seen >> 3) + (small >> 2) + (s64)0xfedcba9876543210ULL + (bpf_get_prandom_u32() < 7);
    return v[7] < -5 ? 1 : 2;
}"#,
    ),
    (
        "v4_signed_movsx",
        "v4",
        r#"
SEC("xdp") int signed_ops(struct xdp_md *ctx) {
    u8 *data = (u8 *)(long)ctx->data, *end = (u8 *)(long)ctx->data_end;
    if (data + 8 > end) return 1;
    s64 a = (signed char)data[0], b = (short)((data[1] << 8) | data[2]);
    s32 c = (s32)(a * 1000) / (s32)(b | 1);
    s64 d = a % (b | 3);
    return (int)(__builtin_bswap64(c + d) >> 60) + (int)__builtin_bswap32((u32)d);
}"#,
    ),
];

/// A directory of the calling test's own: the tests run in parallel and
/// each removes its directory when done.
fn scratch_dir() -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("main")
        .replace("::", "_");
    let dir = std::env::temp_dir().join(format!(
        "ebpf_clang_roundtrip_{}_{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Compiles one program; `None` when this clang does not know the CPU
/// version (clang before 18 has no `-mcpu=v4`).
fn compile(dir: &Path, name: &str, cpu: &str, body: &str) -> Option<Vec<u8>> {
    let src = dir.join(format!("{name}.c"));
    let obj = dir.join(format!("{name}.o"));
    std::fs::write(&src, format!("{PRELUDE}\n{body}\n")).expect("write source");
    let out = Command::new("clang")
        .args(["-O2", "-target", "bpf", &format!("-mcpu={cpu}"), "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap_or_else(|e| panic!("cannot run clang ({e}): apt-get install clang"));
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && err.contains("unknown target CPU") {
        eprintln!(
            "{name}: skipped, this clang has no -mcpu={cpu}: {}",
            err.lines().next().unwrap_or("")
        );
        return None;
    }
    assert!(out.status.success(), "clang failed on {name}:\n{err}");
    Some(std::fs::read(&obj).expect("read object"))
}

/// llvm-objdump's instructions of one section: (slot, opcode byte, text).
fn objdump(obj: &Path, section: &str) -> Vec<(usize, u8, String)> {
    let out = Command::new("llvm-objdump")
        .args(["-d", "-j", section])
        .arg(obj)
        .output()
        .unwrap_or_else(|e| panic!("cannot run llvm-objdump ({e}): apt-get install llvm"));
    assert!(
        out.status.success(),
        "llvm-objdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter_map(|l| {
            let (slot, rest) = l.trim_start().split_once(":\t")?;
            let slot = slot.parse().ok()?;
            let (bytes, asm) = rest.split_once('\t').unwrap_or((rest, ""));
            let code = u8::from_str_radix(bytes.split_whitespace().next()?, 16).ok()?;
            Some((slot, code, asm.trim().to_string()))
        })
        .collect()
}

/// Our listing as (slot, opcode byte, text).
fn ours(listing: &str) -> Vec<(usize, u8, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let (slot, rest) = l.trim_start().split_once(": (")?;
            let (code, text) = rest.split_once(") ")?;
            Some((
                slot.parse().ok()?,
                u8::from_str_radix(code, 16).ok()?,
                text.to_string(),
            ))
        })
        .collect()
}

/// Lines both syntaxes print the same way: `exit` and moves.
fn same_in_both(llvm: &str) -> bool {
    let mov = |s: &str| {
        let mut p = s.split(" = ");
        let (Some(d), Some(v), None) = (p.next(), p.next(), p.next()) else {
            return false;
        };
        let reg =
            |r: &str| r.len() >= 2 && matches!(&r[..1], "r" | "w") && r[1..].parse::<u8>().is_ok();
        reg(d) && (reg(v) || v.parse::<i64>().is_ok())
    };
    llvm == "exit" || mov(llvm)
}

#[test]
fn clang_objects_round_trip_and_match_llvm_objdump() {
    let dir = scratch_dir();
    let mut sections = 0;
    let mut exact = 0;
    for (name, cpu, body) in PROGRAMS {
        let Some(file) = compile(&dir, name, cpu, body) else {
            continue;
        };
        let code = elf::code_sections(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!code.is_empty(), "{name}: no program section");
        for (section, bytes) in code {
            let insns = from_bytes(&bytes).unwrap_or_else(|e| panic!("{name} {section}: {e}"));
            let ops = decode_all(&insns).unwrap_or_else(|e| panic!("{name} {section}: {e}"));
            let again: Vec<_> = ops.iter().flat_map(|(_, op)| op.encode()).collect();
            assert_eq!(
                to_bytes(&again),
                bytes,
                "{name} {section}: re-encoding differs"
            );
            let listing = disassemble(&insns).expect("decodes");
            let mine = ours(&listing);
            let llvm = objdump(&dir.join(format!("{name}.o")), &section);
            let key =
                |v: &[(usize, u8, String)]| v.iter().map(|(s, c, _)| (*s, *c)).collect::<Vec<_>>();
            assert_eq!(
                key(&mine),
                key(&llvm),
                "{name} {section}: slots or opcodes differ\nours:\n{listing}"
            );
            for ((slot, _, a), (_, _, b)) in mine.iter().zip(&llvm) {
                if same_in_both(b) {
                    assert_eq!(a, b, "{name} {section} slot {slot}");
                    exact += 1;
                }
            }
            sections += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{sections} sections round-tripped, {exact} lines identical to llvm-objdump");
    assert!(
        sections >= 4 && exact > 20,
        "{sections} sections, {exact} exact lines"
    );
}

/// Our listing of a translated XDP program against the kernel's own.
#[test]
fn translated_xdp_listing_matches_bpftool_xlated() {
    if !e2e::kernel_available("translated_xdp_listing_matches_bpftool_xlated") {
        return;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("translated_xdp_listing_matches_bpftool_xlated: skipped, no bpftool (apt-get install bpftool)");
        return;
    }
    use filter_programs::cbpf::Insn as C;
    use filter_programs::elf::{write, Object};
    use filter_programs::translate::{translate, Target};
    use filter_programs::Hook;
    // tcpdump -dd 'tcp dst port 80' (IPv4 part): absolute, indirect and msh loads.
    let prog = [
        C::new(0x28, 0, 0, 12),
        C::new(0x15, 0, 8, 0x800),
        C::new(0x30, 0, 0, 23),
        C::new(0x15, 0, 6, 6),
        C::new(0x28, 0, 0, 20),
        C::new(0x45, 4, 0, 0x1fff),
        C::new(0xb1, 0, 0, 14),
        C::new(0x48, 0, 0, 16),
        C::new(0x15, 0, 1, 80),
        C::new(0x06, 0, 0, 262144),
        C::new(0x06, 0, 0, 0),
    ];
    let insns = translate(&prog, Target::xdp()).expect("translates");
    let obj = Object {
        hook: Hook::Xdp,
        name: "roundtrip".into(),
        insns: insns.clone(),
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    };
    let dir = scratch_dir();
    let path = dir.join("xdp.o");
    std::fs::write(&path, write(&obj).expect("writes")).expect("write object");
    let pin = format!("/sys/fs/bpf/ebpf_clang_roundtrip_{}", std::process::id());
    let load = Command::new("bpftool")
        .args(["prog", "load"])
        .arg(&path)
        .arg(&pin)
        .args(["type", "xdp"])
        .output()
        .expect("bpftool");
    assert!(
        load.status.success(),
        "bpftool prog load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let dump = Command::new("bpftool")
        .args(["prog", "dump", "xlated", "pinned", &pin])
        .output()
        .expect("bpftool");
    let _ = std::fs::remove_file(&pin);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        dump.status.success(),
        "bpftool prog dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let kernel = ours(&String::from_utf8_lossy(&dump.stdout));
    let listing = disassemble(&insns).expect("decodes");
    let mine = ours(&listing);
    assert_eq!(
        kernel.len(),
        mine.len(),
        "instruction counts differ:\n{}",
        String::from_utf8_lossy(&dump.stdout)
    );
    // The verifier turns xdp_md's 32-bit data and data_end loads into
    // 64-bit loads of the kernel's xdp_buff; everything else is ours.
    let ops = decode_all(&insns).expect("decodes");
    let ctx_loads: Vec<usize> = ops
        .iter()
        .filter(|(_, op)| matches!(op, Op::Ldx { src: Reg::R6, .. }))
        .map(|(s, _)| *s)
        .collect();
    let mut compared = 0;
    for (m, k) in mine.iter().zip(&kernel) {
        if ctx_loads.contains(&m.0) {
            continue;
        }
        assert_eq!(
            m,
            k,
            "ours:\n{listing}\nkernel:\n{}",
            String::from_utf8_lossy(&dump.stdout)
        );
        compared += 1;
    }
    println!(
        "{compared} of {} lines identical to bpftool's xlated dump",
        mine.len()
    );
    assert!(compared > mine.len() / 2);
}
