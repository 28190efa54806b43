//! Relocatable BPF ELF objects that aya, `ip` (libbpf) and bpftool load.
//!
//! ```text
//!  ELF64, little endian, ET_REL, EM_BPF (247), no program headers
//!  [0] null
//!  [1] .strtab            names of sections and symbols
//!  [2] <prog section>     `socket`, `xdp` or `classifier`: the instructions
//!  [3] .rel<prog section> map references (only with maps)
//!  [ ] license            "GPL\0"
//!  [ ] .maps              one 32-byte definition per map (only with maps)
//!  [ ] .BTF               types of the maps (see `btf`)
//!  [ ] .symtab            null, then globals: the program, the license, the maps
//! ```
//!
//! A map reference is an `LD_IMM64` with a zero immediate and an
//! `R_BPF_64_64` relocation to the map's symbol, addend 0, as clang emits.

pub mod btf;
pub mod read;

use crate::ebpf::insn::{to_bytes, Insn};
pub use btf::{MapBtf, ValueLayout, MAP_DEF_SIZE};

/// Where the program goes; its ELF section name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Socket,
    Xdp,
    Classifier,
}

impl Section {
    /// The exact names both aya and libbpf accept (aya refuses `xdp/NAME`
    /// and `tc`).
    pub fn name(self) -> &'static str {
        match self {
            Section::Socket => "socket",
            Section::Xdp => "xdp",
            Section::Classifier => "classifier",
        }
    }
}

/// An object to write: one program and its maps.
#[derive(Clone, Debug)]
pub struct Object {
    pub section: Section,
    /// The program's symbol name.
    pub name: String,
    pub insns: Vec<Insn>,
    pub maps: Vec<MapBtf>,
    /// (slot of an `LD_IMM64`, index into `maps`).
    pub map_refs: Vec<(usize, usize)>,
    pub license: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("map reference at slot {slot} is not an ld_imm64 instruction")]
    NotImm64 { slot: usize },
    #[error("map reference at slot {slot} names map {map}, but there are {count} maps")]
    NoSuchMap { slot: usize, map: usize, count: usize },
    #[error("name {0:?} is empty or contains a NUL byte")]
    BadName(String),
}

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_REL: u32 = 9;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const STB_GLOBAL: u8 = 1;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const R_BPF_64_64: u64 = 1;
const EM_BPF: u16 = 247;

struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

struct Strtab(Vec<u8>);

impl Strtab {
    fn add(&mut self, s: &str) -> u32 {
        let off = self.0.len() as u32;
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        off
    }
}

fn sym(name: u32, kind: u8, shndx: u16, value: u64, size: u64) -> [u8; 24] {
    let mut s = [0u8; 24];
    s[0..4].copy_from_slice(&name.to_le_bytes());
    s[4] = (STB_GLOBAL << 4) | kind;
    s[6..8].copy_from_slice(&shndx.to_le_bytes());
    s[8..16].copy_from_slice(&value.to_le_bytes());
    s[16..24].copy_from_slice(&size.to_le_bytes());
    s
}

/// One of several programs in a section (see [`write_many`]).
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub insns: Vec<Insn>,
    /// (slot within this program, index into the maps).
    pub map_refs: Vec<(usize, usize)>,
}

/// Writes the object.
pub fn write(obj: &Object) -> Result<Vec<u8>, ElfError> {
    let part = Part { name: obj.name.clone(), insns: obj.insns.clone(), map_refs: obj.map_refs.clone() };
    write_many(obj.section, &[part], &obj.maps, &obj.license)
}

/// Writes several programs into one section, one function symbol each (as
/// clang does for several functions with the same `SEC()`), sharing maps.
pub fn write_many(section: Section, parts: &[Part], maps: &[MapBtf], license: &str) -> Result<Vec<u8>, ElfError> {
    let mut insns = Vec::new();
    let mut map_refs = Vec::new();
    let mut symbols = Vec::new();
    for p in parts {
        if p.name.is_empty() || p.name.contains('\0') {
            return Err(ElfError::BadName(p.name.clone()));
        }
        for &(slot, map) in &p.map_refs {
            if p.insns.get(slot).map(|i| i.code) != Some(crate::ebpf::insn::code::LD_IMM64) {
                return Err(ElfError::NotImm64 { slot });
            }
            if map >= maps.len() {
                return Err(ElfError::NoSuchMap { slot, map, count: maps.len() });
            }
            map_refs.push((insns.len() + slot, map));
        }
        symbols.push((p.name.clone(), insns.len(), p.insns.len()));
        insns.extend_from_slice(&p.insns);
    }
    let obj = Object { section, name: String::new(), insns, maps: maps.to_vec(), map_refs, license: license.into() };
    for n in obj.maps.iter().map(|m| &m.name) {
        if n.is_empty() || n.contains('\0') {
            return Err(ElfError::BadName(n.clone()));
        }
    }
    let has_maps = !obj.maps.is_empty();
    let prog_sec = obj.section.name();
    let mut strtab = Strtab(vec![0]);
    // Section indices, fixed by the layout above.
    let (i_prog, i_rel) = (2u16, 3u16);
    let i_license = if has_maps { 4 } else { 3 };
    let i_maps = i_license + 1;
    let i_btf = if has_maps { i_maps + 1 } else { i_license + 1 };
    let i_symtab = i_btf + 1;

    let mut symtab = vec![0u8; 24];
    for (name, start, len) in &symbols {
        let prog_sym = sym(strtab.add(name), STT_FUNC, i_prog, *start as u64 * 8, *len as u64 * 8);
        symtab.extend_from_slice(&prog_sym);
    }
    let mut license = obj.license.as_bytes().to_vec();
    license.push(0);
    symtab.extend_from_slice(&sym(strtab.add("_license"), STT_OBJECT, i_license, 0, license.len() as u64));
    let first_map_sym = 2 + symbols.len() as u64;
    for (i, m) in obj.maps.iter().enumerate() {
        let off = (i as u32 * MAP_DEF_SIZE) as u64;
        symtab.extend_from_slice(&sym(strtab.add(&m.name), STT_OBJECT, i_maps, off, MAP_DEF_SIZE as u64));
    }
    let mut rel = Vec::new();
    for &(slot, map) in &obj.map_refs {
        rel.extend_from_slice(&(slot as u64 * 8).to_le_bytes());
        rel.extend_from_slice(&(((first_map_sym + map as u64) << 32) | R_BPF_64_64).to_le_bytes());
    }

    let mut sections = vec![
        Shdr { name: strtab.add(".strtab"), kind: SHT_STRTAB, flags: 0, data: vec![], link: 0, info: 0, align: 1, entsize: 0 },
        Shdr {
            name: strtab.add(prog_sec),
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            data: to_bytes(&obj.insns),
            link: 0,
            info: 0,
            align: 8,
            entsize: 0,
        },
    ];
    if has_maps {
        sections.push(Shdr {
            name: strtab.add(&format!(".rel{prog_sec}")),
            kind: SHT_REL,
            flags: 0,
            data: rel,
            link: i_symtab as u32,
            info: i_prog as u32,
            align: 8,
            entsize: 16,
        });
    }
    sections.push(Shdr {
        name: strtab.add("license"),
        kind: SHT_PROGBITS,
        flags: SHF_ALLOC | SHF_WRITE,
        data: license,
        link: 0,
        info: 0,
        align: 1,
        entsize: 0,
    });
    if has_maps {
        sections.push(Shdr {
            name: strtab.add(".maps"),
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_WRITE,
            data: vec![0; obj.maps.len() * MAP_DEF_SIZE as usize],
            link: 0,
            info: 0,
            align: 8,
            entsize: 0,
        });
    }
    sections.push(Shdr {
        name: strtab.add(".BTF"),
        kind: SHT_PROGBITS,
        flags: 0,
        data: btf::maps_btf(&obj.maps),
        link: 0,
        info: 0,
        align: 4,
        entsize: 0,
    });
    sections.push(Shdr {
        name: strtab.add(".symtab"),
        kind: SHT_SYMTAB,
        flags: 0,
        data: symtab,
        link: 1,
        // Index of the first global symbol: all but the null one are global.
        info: 1,
        align: 8,
        entsize: 24,
    });
    sections[0].data = strtab.0;
    let _ = (i_rel, i_btf);

    // Layout: header, section contents (aligned), section header table.
    let mut out = vec![0u8; 64];
    let mut offsets = Vec::new();
    for s in &sections {
        while out.len() as u64 % s.align.max(1) != 0 {
            out.push(0);
        }
        offsets.push(out.len() as u64);
        out.extend_from_slice(&s.data);
    }
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u64;
    out.extend_from_slice(&[0u8; 64]);
    for (s, off) in sections.iter().zip(&offsets) {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&s.name.to_le_bytes());
        h[4..8].copy_from_slice(&s.kind.to_le_bytes());
        h[8..16].copy_from_slice(&s.flags.to_le_bytes());
        h[24..32].copy_from_slice(&off.to_le_bytes());
        h[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        h[40..44].copy_from_slice(&s.link.to_le_bytes());
        h[44..48].copy_from_slice(&s.info.to_le_bytes());
        h[48..56].copy_from_slice(&s.align.to_le_bytes());
        h[56..64].copy_from_slice(&s.entsize.to_le_bytes());
        out.extend_from_slice(&h);
    }
    let shnum = sections.len() as u16 + 1;
    let hdr = &mut out[0..64];
    hdr[0..4].copy_from_slice(b"\x7fELF");
    hdr[4] = 2; // ELFCLASS64
    hdr[5] = 1; // ELFDATA2LSB
    hdr[6] = 1; // EV_CURRENT
    hdr[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    hdr[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
    hdr[20..24].copy_from_slice(&1u32.to_le_bytes());
    hdr[40..48].copy_from_slice(&shoff.to_le_bytes());
    hdr[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    hdr[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    hdr[60..62].copy_from_slice(&shnum.to_le_bytes());
    hdr[62..64].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx: .strtab
    Ok(out)
}

#[cfg(test)]
mod tests;
