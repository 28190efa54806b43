use super::*;
use crate::ebpf::asm::Asm;
use crate::ebpf::insn::{Op, Operand, Pseudo, Reg};

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// (name, type, offset, size) of every section.
fn sections(elf: &[u8]) -> Vec<(String, u32, usize, usize)> {
    let shoff = u64_at(elf, 40) as usize;
    let shnum = u16_at(elf, 60) as usize;
    let strndx = u16_at(elf, 62) as usize;
    let hdr = |i: usize| &elf[shoff + 64 * i..shoff + 64 * (i + 1)];
    let str_off = u64_at(hdr(strndx), 24) as usize;
    (0..shnum)
        .map(|i| {
            let h = hdr(i);
            let name_off = str_off + u32_at(h, 0) as usize;
            let end = elf[name_off..].iter().position(|b| *b == 0).unwrap();
            let name = String::from_utf8(elf[name_off..name_off + end].to_vec()).unwrap();
            (
                name,
                u32_at(h, 4),
                u64_at(h, 24) as usize,
                u64_at(h, 32) as usize,
            )
        })
        .collect()
}

fn counter_map() -> MapBtf {
    MapBtf {
        name: "counters".into(),
        map_type: 6,
        max_entries: 4,
        value: ValueLayout::U64Struct {
            name: "counter".into(),
            fields: vec!["packets".into(), "bytes".into()],
        },
        map_flags: 0,
    }
}

#[test]
fn header_is_a_relocatable_bpf_object() {
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(2));
    a.exit();
    let obj = Object {
        hook: Hook::Xdp,
        name: "filter".into(),
        insns: a.assemble().unwrap(),
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    };
    let elf = write(&obj).unwrap();
    assert_eq!(&elf[..7], b"\x7fELF\x02\x01\x01");
    assert_eq!(u16_at(&elf, 16), 1, "ET_REL");
    assert_eq!(u16_at(&elf, 18), 247, "EM_BPF");
    let names: Vec<String> = sections(&elf).into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["", ".strtab", "xdp", "license", ".BTF", ".symtab"]);
    let (_, _, off, size) = sections(&elf)[2].clone();
    assert_eq!(&elf[off..off + size], &to_bytes(&obj.insns)[..]);
    let (_, _, off, size) = sections(&elf)[3].clone();
    assert_eq!(&elf[off..off + size], b"GPL\0");
}

#[test]
fn map_references_are_relocated_to_the_map_symbol() {
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(0));
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::None,
        src_reg: 0,
        imm: 0,
    });
    a.exit();
    let obj = Object {
        hook: Hook::Tc,
        name: "filter".into(),
        insns: a.assemble().unwrap(),
        maps: vec![counter_map()],
        map_refs: vec![(1, 0)],
        license: "GPL".into(),
    };
    let elf = write(&obj).unwrap();
    let secs = sections(&elf);
    let names: Vec<&str> = secs.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "",
            ".strtab",
            "classifier",
            ".relclassifier",
            "license",
            ".maps",
            ".BTF",
            ".symtab"
        ]
    );
    let (_, kind, off, size) = secs[3].clone();
    assert_eq!((kind, size), (9, 16));
    assert_eq!(u64_at(&elf, off), 8, "r_offset: slot 1");
    assert_eq!(
        u64_at(&elf, off + 8),
        (3 << 32) | 1,
        "symbol 3 (the map), R_BPF_64_64"
    );
    assert_eq!(secs[5].3, MAP_DEF_SIZE as _, "one map definition");
}

#[test]
fn bad_references_are_errors() {
    let mut a = Asm::new();
    a.exit();
    let mut obj = Object {
        hook: Hook::Socket,
        name: "f".into(),
        insns: a.assemble().unwrap(),
        maps: vec![counter_map()],
        map_refs: vec![(0, 0)],
        license: "GPL".into(),
    };
    assert_eq!(write(&obj), Err(ElfError::NotImm64 { slot: 0 }));
    obj.map_refs = vec![];
    obj.name = String::new();
    assert!(matches!(write(&obj), Err(ElfError::BadName(_))));
}
