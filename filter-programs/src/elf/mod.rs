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
use crate::Hook;
pub use btf::{MapBtf, ValueLayout, MAP_DEF_SIZE};

/// An object to write: one program and its maps.
#[derive(Clone, Debug)]
pub struct Object {
    /// Where the program runs; its section is [`Hook::section`].
    pub hook: Hook,
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
    NoSuchMap {
        slot: usize,
        map: usize,
        count: usize,
    },
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

impl Shdr {
    fn new(name: u32, kind: u32, flags: u64, data: Vec<u8>, align: u64) -> Shdr {
        Shdr {
            name,
            kind,
            flags,
            data,
            link: 0,
            info: 0,
            align,
            entsize: 0,
        }
    }
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
    let part = Part {
        name: obj.name.clone(),
        insns: obj.insns.clone(),
        map_refs: obj.map_refs.clone(),
    };
    write_many(obj.hook, &[part], &obj.maps, &obj.license)
}

/// Writes several programs into one section, one function symbol each (as
/// clang does for several functions with the same `SEC()`), sharing maps.
pub fn write_many(
    hook: Hook,
    parts: &[Part],
    maps: &[MapBtf],
    license: &str,
) -> Result<Vec<u8>, ElfError> {
    let code = Code::join(parts, maps)?;
    let layout = Layout {
        has_maps: !maps.is_empty(),
    };
    let mut strtab = Strtab(vec![0]);
    let mut license = license.as_bytes().to_vec();
    license.push(0);
    let symtab = symtab(&mut strtab, layout, &code.symbols, license.len(), maps);
    // The map symbols follow the null symbol, the programs and the license.
    let rel = relocations(&code.map_refs, 2 + code.symbols.len() as u64);
    let contents = Contents {
        code: to_bytes(&code.insns),
        rel,
        license,
        maps: vec![0; maps.len() * MAP_DEF_SIZE as usize],
        btf: btf::maps_btf(maps),
        symtab,
    };
    let mut sections = section_headers(hook, &mut strtab, layout, contents);
    sections[0].data = strtab.0;
    Ok(file(&sections))
}

/// The section indices of the layout in the module doc, which depend only
/// on whether there are maps.
#[derive(Clone, Copy)]
struct Layout {
    has_maps: bool,
}

impl Layout {
    const PROG: u16 = 2;

    fn license(self) -> u16 {
        if self.has_maps {
            4
        } else {
            3
        }
    }

    /// Meaningful only with maps.
    fn maps(self) -> u16 {
        self.license() + 1
    }

    /// After the license, `.maps` (with maps) and `.BTF`.
    fn symtab(self) -> u16 {
        self.license() + if self.has_maps { 3 } else { 2 }
    }
}

/// The programs laid end to end, as the one section holds them.
struct Code {
    insns: Vec<Insn>,
    /// (slot in the section, index into the maps).
    map_refs: Vec<(usize, usize)>,
    /// (name, first slot, length in slots) of each program.
    symbols: Vec<(String, usize, usize)>,
}

impl Code {
    fn join(parts: &[Part], maps: &[MapBtf]) -> Result<Code, ElfError> {
        let mut code = Code {
            insns: Vec::new(),
            map_refs: Vec::new(),
            symbols: Vec::new(),
        };
        for p in parts {
            check_name(&p.name)?;
            for &(slot, map) in &p.map_refs {
                if p.insns.get(slot).map(|i| i.code) != Some(crate::ebpf::insn::code::LD_IMM64) {
                    return Err(ElfError::NotImm64 { slot });
                }
                if map >= maps.len() {
                    return Err(ElfError::NoSuchMap {
                        slot,
                        map,
                        count: maps.len(),
                    });
                }
                code.map_refs.push((code.insns.len() + slot, map));
            }
            code.symbols
                .push((p.name.clone(), code.insns.len(), p.insns.len()));
            code.insns.extend_from_slice(&p.insns);
        }
        for m in maps {
            check_name(&m.name)?;
        }
        Ok(code)
    }
}

fn check_name(name: &str) -> Result<(), ElfError> {
    if name.is_empty() || name.contains('\0') {
        return Err(ElfError::BadName(name.to_string()));
    }
    Ok(())
}

/// The symbol table: the null symbol, then the programs, the license and
/// the maps, all global.
fn symtab(
    strtab: &mut Strtab,
    layout: Layout,
    programs: &[(String, usize, usize)],
    license_len: usize,
    maps: &[MapBtf],
) -> Vec<u8> {
    let mut symtab = vec![0u8; 24];
    for (name, start, len) in programs {
        let prog_sym = sym(
            strtab.add(name),
            STT_FUNC,
            Layout::PROG,
            *start as u64 * 8,
            *len as u64 * 8,
        );
        symtab.extend_from_slice(&prog_sym);
    }
    symtab.extend_from_slice(&sym(
        strtab.add("_license"),
        STT_OBJECT,
        layout.license(),
        0,
        license_len as u64,
    ));
    for (i, m) in maps.iter().enumerate() {
        let off = (i as u32 * MAP_DEF_SIZE) as u64;
        symtab.extend_from_slice(&sym(
            strtab.add(&m.name),
            STT_OBJECT,
            layout.maps(),
            off,
            MAP_DEF_SIZE as u64,
        ));
    }
    symtab
}

/// One `R_BPF_64_64` entry per map reference, to the map's symbol.
fn relocations(map_refs: &[(usize, usize)], first_map_sym: u64) -> Vec<u8> {
    let mut rel = Vec::new();
    for &(slot, map) in map_refs {
        rel.extend_from_slice(&(slot as u64 * 8).to_le_bytes());
        rel.extend_from_slice(&(((first_map_sym + map as u64) << 32) | R_BPF_64_64).to_le_bytes());
    }
    rel
}

/// What each section holds; `rel` and `maps` are written only with maps.
struct Contents {
    code: Vec<u8>,
    rel: Vec<u8>,
    license: Vec<u8>,
    maps: Vec<u8>,
    btf: Vec<u8>,
    symtab: Vec<u8>,
}

/// The sections after the null one, in the layout's order. `.strtab`'s
/// contents are left empty: its names are still being added here.
fn section_headers(hook: Hook, strtab: &mut Strtab, layout: Layout, c: Contents) -> Vec<Shdr> {
    let prog_sec = hook.section();
    let mut sections = vec![
        Shdr::new(strtab.add(".strtab"), SHT_STRTAB, 0, vec![], 1),
        Shdr::new(
            strtab.add(prog_sec),
            SHT_PROGBITS,
            SHF_ALLOC | SHF_EXECINSTR,
            c.code,
            8,
        ),
    ];
    if layout.has_maps {
        let name = strtab.add(&format!(".rel{prog_sec}"));
        sections.push(Shdr {
            link: layout.symtab() as u32,
            info: Layout::PROG as u32,
            entsize: 16,
            ..Shdr::new(name, SHT_REL, 0, c.rel, 8)
        });
    }
    sections.push(Shdr::new(
        strtab.add("license"),
        SHT_PROGBITS,
        SHF_ALLOC | SHF_WRITE,
        c.license,
        1,
    ));
    if layout.has_maps {
        sections.push(Shdr::new(
            strtab.add(".maps"),
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            c.maps,
            8,
        ));
    }
    sections.push(Shdr::new(strtab.add(".BTF"), SHT_PROGBITS, 0, c.btf, 4));
    let name = strtab.add(".symtab");
    // info: the index of the first global symbol; all but the null one are.
    sections.push(Shdr {
        link: 1,
        info: 1,
        entsize: 24,
        ..Shdr::new(name, SHT_SYMTAB, 0, c.symtab, 8)
    });
    sections
}

/// The file: header, section contents (aligned), section header table.
fn file(sections: &[Shdr]) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let mut offsets = Vec::new();
    for s in sections {
        while !(out.len() as u64).is_multiple_of(s.align.max(1)) {
            out.push(0);
        }
        offsets.push(out.len() as u64);
        out.extend_from_slice(&s.data);
    }
    while !out.len().is_multiple_of(8) {
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
    out[0..64].copy_from_slice(&elf_header(shoff, sections.len() as u16 + 1));
    out
}

fn elf_header(shoff: u64, shnum: u16) -> [u8; 64] {
    let mut hdr = [0u8; 64];
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
    hdr
}

#[cfg(test)]
mod tests;
