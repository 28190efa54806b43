//! Our ELF objects load in every loader users have: aya (`Ebpf::load`),
//! iproute2 (`ip link set dev X xdpgeneric obj F sec xdp`) and bpftool
//! (`bpftool prog loadall`), with and without maps.

use std::path::{Path, PathBuf};
use std::process::Command;

use filter_programs::ebpf::asm::Asm;
use filter_programs::ebpf::insn::{
    AluOp, AtomicOp, CallTarget, Insn, JmpOp, Op, Operand, Pseudo, Reg, Size,
};
use filter_programs::elf::{write, MapBtf, Object, ValueLayout};
use filter_programs::translate::{translate, Target};
use filter_programs::Hook;
use libpcap_oracle::{self as libpcap, CompileOptions};

const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

fn tcp_port_80(target: Target) -> Vec<Insn> {
    let prog = libpcap::compile("tcp port 80", CompileOptions::new(1)).expect("libpcap compiles");
    translate(&prog, target).expect("translates")
}

/// A program with a loop, bounded by `may_goto`.
fn protochain(target: Target) -> Vec<Insn> {
    let prog =
        libpcap::compile("ip6 protochain 17", CompileOptions::new(1)).expect("libpcap compiles");
    translate(&prog, target).expect("translates")
}

/// A program that counts packets and bytes in a per-CPU array, then passes.
fn counting_program(ret: i32) -> (Vec<Insn>, Vec<(usize, usize)>) {
    let mut a = Asm::new();
    let out = a.label();
    a.mov64(Reg::R6, Operand::Reg(Reg::R1));
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: -4,
        imm: 0,
    });
    let map_slot = 2;
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::None,
        src_reg: 0,
        imm: 0,
    });
    a.mov64(Reg::R2, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(-4));
    a.push(Op::Call(CallTarget::Helper(1)));
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), out);
    a.mov64(Reg::R1, Operand::Imm(1));
    a.push(Op::Atomic {
        size: Size::DW,
        op: AtomicOp::Add,
        fetch: false,
        dst: Reg::R0,
        src: Reg::R1,
        off: 0,
    });
    a.bind(out);
    a.mov64(Reg::R0, Operand::Imm(ret));
    a.exit();
    (a.assemble().unwrap(), vec![(map_slot, 0)])
}

fn object(section: Hook, insns: Vec<Insn>, map_refs: Vec<(usize, usize)>) -> Vec<u8> {
    let maps = if map_refs.is_empty() {
        vec![]
    } else {
        vec![MapBtf {
            name: "counters".into(),
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            max_entries: 1,
            value: ValueLayout::U64Struct {
                name: "counter".into(),
                fields: vec!["packets".into()],
            },
            map_flags: 0,
        }]
    };
    write(&Object {
        hook: section,
        name: "filter".into(),
        insns,
        maps,
        map_refs,
        license: "GPL".into(),
    })
    .expect("writes")
}

fn all_objects() -> Vec<(&'static str, Hook, Vec<u8>)> {
    let mut v = Vec::new();
    for (section, target) in [
        (Hook::Socket, Target::socket()),
        (Hook::Xdp, Target::xdp()),
        (Hook::Tc, Target::tc()),
    ] {
        v.push((
            "plain",
            section,
            object(section, tcp_port_80(target), vec![]),
        ));
        v.push(("loop", section, object(section, protochain(target), vec![])));
        let (insns, refs) = counting_program(if section == Hook::Socket { 0xffff } else { 0 });
        v.push(("maps", section, object(section, insns, refs)));
    }
    v
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("filterd-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn aya_loads_every_object() {
    if !e2e::kernel_available("aya_loads_every_object") {
        return;
    }
    for (kind, section, bytes) in all_objects() {
        let mut ebpf = aya::Ebpf::load(&bytes)
            .unwrap_or_else(|e| panic!("aya parses {kind} {section:?}: {e}"));
        let prog = ebpf
            .program_mut("filter")
            .unwrap_or_else(|| panic!("{kind} {section:?}: no program"));
        let res = match section {
            Hook::Xdp => TryInto::<&mut aya::programs::Xdp>::try_into(prog)
                .unwrap()
                .load(),
            Hook::Socket => TryInto::<&mut aya::programs::SocketFilter>::try_into(prog)
                .unwrap()
                .load(),
            Hook::Tc => TryInto::<&mut aya::programs::SchedClassifier>::try_into(prog)
                .unwrap()
                .load(),
            Hook::Trace => unreachable!("the objects are of the packet hooks (Hook::ALL)"),
        };
        res.unwrap_or_else(|e| panic!("aya loads {kind} {section:?}: {e}"));
        if kind == "maps" {
            assert!(ebpf.map("counters").is_some(), "aya sees the map");
        }
    }
}

fn ensure_bpffs() -> PathBuf {
    let root = Path::new("/sys/fs/bpf");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    {
        let (ok, text) = run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]));
        assert!(ok, "mount bpffs: {text}");
    }
    root.to_path_buf()
}

#[test]
fn bpftool_loads_every_object() {
    if !e2e::kernel_available("bpftool_loads_every_object") {
        return;
    }
    let bpffs = ensure_bpffs();
    for (i, (kind, section, bytes)) in all_objects().into_iter().enumerate() {
        let file = tmp(&format!("bpftool-{i}.o"));
        std::fs::write(&file, &bytes).unwrap();
        let pin = bpffs.join(format!("filterd-test-{}-{i}", std::process::id()));
        let (ok, text) = run(Command::new("bpftool")
            .arg("prog")
            .arg("loadall")
            .arg(&file)
            .arg(&pin));
        let _ = std::fs::remove_dir_all(&pin);
        assert!(ok, "bpftool prog loadall {kind} {section:?}: {text}");
    }
}

/// A network namespace that is deleted on drop, even when the test fails.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("fd-{tag}-{}", std::process::id());
        let (ok, text) = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(ok, "ip netns add: {text}");
        Netns(name)
    }
    fn ip(&self, args: &[&str]) -> (bool, String) {
        run(Command::new("ip").arg("-n").arg(&self.0).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "delete", &self.0]));
    }
}

#[test]
fn iproute2_attaches_xdp_objects() {
    if !e2e::kernel_available("iproute2_attaches_xdp_objects") {
        return;
    }
    let ns = Netns::new("elf");
    let (ok, text) = ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    assert!(ok, "veth: {text}");
    for (i, (kind, section, bytes)) in all_objects().into_iter().enumerate() {
        if section != Hook::Xdp {
            continue;
        }
        let file = tmp(&format!("ip-{i}.o"));
        std::fs::write(&file, &bytes).unwrap();
        let f = file.to_str().unwrap();
        let (ok, text) = ns.ip(&[
            "link",
            "set",
            "dev",
            "v0",
            "xdpgeneric",
            "obj",
            f,
            "sec",
            "xdp",
        ]);
        assert!(ok, "ip link set xdpgeneric obj ({kind}): {text}");
        let (_, shown) = ns.ip(&["link", "show", "dev", "v0"]);
        assert!(shown.contains("xdpgeneric"), "{shown}");
        let (ok, text) = ns.ip(&["link", "set", "dev", "v0", "xdpgeneric", "off"]);
        assert!(ok, "detach: {text}");
    }
}
