//! A program's own numbers never size an allocation in our VM: an object
//! whose `bpf_skb_load_bytes` asks for 4 GiB is refused with an error, and
//! pcap-replay exits 2, even under an address-space limit far below what
//! the request would take (before, the VM allocated it and aborted).

use std::process::Command;

use filter_programs::ebpf::asm::Asm;
use filter_programs::ebpf::insn::{AluOp, CallTarget, Op, Operand, Reg};
use filter_programs::elf::{self, Object};
use filter_programs::Hook;

/// `bpf_skb_load_bytes(skb, 100000, fp - 8, 0xffffffff)`: an offset past
/// any frame, so the helper zeroes the destination, all 4 GiB of it.
fn hostile_object() -> Vec<u8> {
    let mut a = Asm::new();
    a.mov64(Reg::R2, Operand::Imm(100_000));
    a.mov64(Reg::R3, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R3, Operand::Imm(-8));
    a.mov32(Reg::R4, Operand::Imm(-1));
    a.push(Op::Call(CallTarget::Helper(26)));
    a.mov64(Reg::R0, Operand::Imm(0));
    a.exit();
    let obj = Object {
        hook: Hook::Socket,
        name: "hostile".into(),
        insns: a.assemble().expect("assemble"),
        maps: Vec::new(),
        map_refs: Vec::new(),
        license: "GPL".into(),
    };
    elf::write(&obj).expect("ELF")
}

#[test]
fn a_huge_helper_length_is_an_error_not_an_allocation() {
    let dir = std::env::temp_dir().join(format!("vm-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("hostile.o");
    std::fs::write(&obj, hostile_object()).unwrap();
    let capture = e2e::repo_root().join("tests/data/print-flags.pcap");
    // 1 GiB of address space: enough for pcap-replay, a quarter of the ask.
    let script = format!(
        "ulimit -v 1048576 && exec {} --ebpf {} --engines ebpf-socket {}",
        e2e::bin("pcap-replay").display(),
        obj.display(),
        capture.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2), "exit {:?}: {said}", out.status);
    // The VM charges a copying helper's length to the run's budget before
    // it copies (one unit per 8 bytes), so 4 GiB ends the run there; a
    // length within the budget but past the frame is refused as outside
    // every region. Either way: an error, no allocation.
    assert!(
        said.contains("instruction budget") || said.contains("outside every region"),
        "{said}"
    );
}
