//! Relocatable BPF ELF objects that aya, `ip` (libbpf) and bpftool load.
//!
//! ```text
//!  ELF64, little endian, ET_REL, EM_BPF (247), no program headers
//!  [0] null
//!  [1] .strtab            names of sections and symbols
//!  [2] <prog section>     `socket`, `xdp` or `classifier`: the instructions
//!  [3] .rel<prog section> map and callback references (only with them)
//!  [ ] .text              callbacks (only with them)
//!  [ ] .rel.text          their map references (only with callbacks)
//!  [ ] license            "GPL\0"
//!  [ ] .maps              one 32-byte definition per map (only with maps)
//!  [ ] .BTF               types of the maps (see `btf`), and with
//!                         callbacks a FUNC type per function
//!  [ ] .BTF.ext           with callbacks: func_info, one record per function
//!  [ ] .symtab            null; with callbacks, locals: `.text`'s section
//!                         symbol and the callbacks; then globals: the
//!                         programs, the license, the maps
//! ```
//!
//! A map reference is an `LD_IMM64` with a zero immediate and an
//! `R_BPF_64_64` relocation to the map's symbol, addend 0, as clang emits.
//!
//! A callback (`bpf_loop`'s) is code at the end of a program that an
//! `LD_IMM64` with a function pseudo source names. In the object it moves
//! to `.text` as a static function, and the reference becomes what clang
//! writes for `&callback`: `LD_IMM64` of the callback's byte offset in
//! `.text`, with an `R_BPF_64_64` relocation to `.text`'s section symbol;
//! libbpf and aya link it back and restore the pseudo source. The kernel
//! takes a callback only with BTF func_info for every function.

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
    #[error("program {program}: the function reference at slot {slot} is not to a callback at the program's end, or is inside one")]
    BadCallback { program: String, slot: usize },
}

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_REL: u32 = 9;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_SECTION: u8 = 3;
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
    sym_bound(STB_GLOBAL, name, kind, shndx, value, size)
}

fn sym_bound(bind: u8, name: u32, kind: u8, shndx: u16, value: u64, size: u64) -> [u8; 24] {
    let mut s = [0u8; 24];
    s[0..4].copy_from_slice(&name.to_le_bytes());
    s[4] = (bind << 4) | kind;
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

/// A program's map references as [`Object::map_refs`] holds them: the
/// slot of each `LD_IMM64` of a map, with the map's index as its imm.
pub fn map_refs(insns: &[Insn]) -> Vec<(usize, usize)> {
    use crate::ebpf::insn::{decode_all, Op, Pseudo};
    decode_all(insns)
        .map(|ops| {
            (ops.into_iter())
                .filter_map(|(slot, op)| match op {
                    Op::LdImm64 {
                        pseudo: Pseudo::MapFd,
                        imm,
                        ..
                    } => Some((slot, imm as usize)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
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

/// Writes the object with its program in section `section` (a tracing
/// program's `tp_btf/NAME`) rather than its hook's.
pub fn write_in(obj: &Object, section: &str) -> Result<Vec<u8>, ElfError> {
    let part = Part {
        name: obj.name.clone(),
        insns: obj.insns.clone(),
        map_refs: obj.map_refs.clone(),
    };
    write_sections(section, &[part], &obj.maps, &obj.license)
}

/// Writes several programs into one section, one function symbol each (as
/// clang does for several functions with the same `SEC()`), sharing maps.
pub fn write_many(
    hook: Hook,
    parts: &[Part],
    maps: &[MapBtf],
    license: &str,
) -> Result<Vec<u8>, ElfError> {
    write_sections(hook.section(), parts, maps, license)
}

fn write_sections(
    section: &str,
    parts: &[Part],
    maps: &[MapBtf],
    license: &str,
) -> Result<Vec<u8>, ElfError> {
    let code = Code::join(parts, maps)?;
    let layout = Layout::new(!maps.is_empty(), !code.callbacks.is_empty());
    let mut strtab = Strtab(vec![0]);
    let mut license = license.as_bytes().to_vec();
    license.push(0);
    let symtab = symtab(&mut strtab, layout, &code, license.len(), maps);
    // The map symbols follow the null symbol, the locals, the programs and
    // the license.
    let first_map_sym = 2 + layout.locals(&code) as u64 + code.symbols.len() as u64;
    let rel = relocations(&code.map_refs, &code.func_refs, first_map_sym);
    let rel_text = relocations(&code.text_map_refs, &[], first_map_sym);
    let (btf, btf_ext) = if code.callbacks.is_empty() {
        (btf::maps_btf(maps), Vec::new())
    } else {
        let funcs: Vec<(btf::FuncBtf, &str, u32)> = (code.symbols.iter())
            .map(|(name, start, _)| (name, false, section, *start))
            .chain((code.callbacks.iter()).map(|(name, start, _)| (name, true, ".text", *start)))
            .map(|(name, callback, section, start)| {
                let f = btf::FuncBtf {
                    name: name.clone(),
                    callback,
                };
                (f, section, start as u32 * 8)
            })
            .collect();
        btf::object_btf(maps, &funcs)
    };
    let contents = Contents {
        code: to_bytes(&code.insns),
        rel,
        text: to_bytes(&code.text),
        rel_text,
        license,
        maps: vec![0; maps.len() * MAP_DEF_SIZE as usize],
        btf,
        btf_ext,
        symtab,
    };
    let mut sections = section_headers(section, &mut strtab, layout, contents);
    sections[0].data = strtab.0;
    Ok(file(&sections))
}

/// The section indices of the layout in the module doc, which depend only
/// on whether there are maps and callbacks.
#[derive(Clone, Copy)]
struct Layout {
    has_maps: bool,
    has_callbacks: bool,
    text: u16,
    license: u16,
    maps: u16,
    symtab: u16,
}

impl Layout {
    const PROG: u16 = 2;

    fn new(has_maps: bool, has_callbacks: bool) -> Layout {
        let mut next = Layout::PROG + 1;
        let mut take = |present: bool| {
            let i = next;
            if present {
                next += 1;
            }
            i
        };
        take(has_maps || has_callbacks); // .rel<prog section>
        let text = take(has_callbacks);
        take(has_callbacks); // .rel.text
        let license = take(true);
        let maps = take(has_maps);
        take(true); // .BTF
        take(has_callbacks); // .BTF.ext
        let symtab = take(true);
        Layout {
            has_maps,
            has_callbacks,
            text,
            license,
            maps,
            symtab,
        }
    }

    /// Local symbols after the null one: `.text`'s and the callbacks'.
    fn locals(self, code: &Code) -> usize {
        if self.has_callbacks {
            1 + code.callbacks.len()
        } else {
            0
        }
    }
}

/// The programs laid end to end, as the one section holds them, and the
/// callbacks moved to `.text`.
struct Code {
    insns: Vec<Insn>,
    /// (slot in the section, index into the maps).
    map_refs: Vec<(usize, usize)>,
    /// (slot in the section, byte offset of the callback in `.text`).
    func_refs: Vec<(usize, u32)>,
    /// (name, first slot, length in slots) of each program.
    symbols: Vec<(String, usize, usize)>,
    text: Vec<Insn>,
    /// (slot in `.text`, index into the maps).
    text_map_refs: Vec<(usize, usize)>,
    /// (name, first slot in `.text`, length in slots) of each callback.
    callbacks: Vec<(String, usize, usize)>,
}

impl Code {
    fn join(parts: &[Part], maps: &[MapBtf]) -> Result<Code, ElfError> {
        let mut code = Code {
            insns: Vec::new(),
            map_refs: Vec::new(),
            func_refs: Vec::new(),
            symbols: Vec::new(),
            text: Vec::new(),
            text_map_refs: Vec::new(),
            callbacks: Vec::new(),
        };
        for p in parts {
            check_name(&p.name)?;
            let refs = func_refs(p)?;
            // The program proper ends where its first callback starts.
            let end = refs.iter().map(|r| r.1).min().unwrap_or(p.insns.len());
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
                if slot < end {
                    code.map_refs.push((code.insns.len() + slot, map));
                } else {
                    code.text_map_refs.push((code.text.len() + slot - end, map));
                }
            }
            let mut starts: Vec<usize> = refs.iter().map(|r| r.1).collect();
            starts.sort_unstable();
            starts.dedup();
            let text_base = code.text.len();
            for (k, &start) in starts.iter().enumerate() {
                let stop = starts.get(k + 1).copied().unwrap_or(p.insns.len());
                code.callbacks.push((
                    format!("{}_callback_{k}", p.name),
                    text_base + start - end,
                    stop - start,
                ));
            }
            let mut main = p.insns[..end].to_vec();
            for &(slot, target) in &refs {
                let off = ((text_base + target - end) * 8) as u32;
                main[slot] = Insn::new(main[slot].code, main[slot].regs & 0x0f, 0, 0, off as i32);
                code.func_refs.push((code.insns.len() + slot, off));
            }
            code.text.extend_from_slice(&p.insns[end..]);
            code.symbols
                .push((p.name.clone(), code.insns.len(), main.len()));
            code.insns.extend_from_slice(&main);
        }
        for m in maps {
            check_name(&m.name)?;
        }
        Ok(code)
    }
}

/// Each function reference of `p`: (its slot, the callback's first slot);
/// every callback lies after the program proper, and references none.
fn func_refs(p: &Part) -> Result<Vec<(usize, usize)>, ElfError> {
    use crate::ebpf::insn::{decode_all, Op, Pseudo};
    let Ok(ops) = decode_all(&p.insns) else {
        return Ok(Vec::new());
    };
    let refs: Vec<(usize, i64)> = ops
        .iter()
        .filter_map(|(slot, op)| match op {
            Op::LdImm64 {
                pseudo: Pseudo::Func,
                imm,
                ..
            } => Some((*slot, *slot as i64 + 1 + *imm as u32 as i32 as i64)),
            _ => None,
        })
        .collect();
    let end = refs.iter().map(|r| r.1).min().unwrap_or(0);
    let bad = |slot| ElfError::BadCallback {
        program: p.name.clone(),
        slot,
    };
    refs.into_iter()
        .map(|(slot, target)| {
            let ok = slot as i64 + 1 < end
                && (target as usize) < p.insns.len()
                && ops.iter().any(|(s, _)| *s as i64 == target);
            if ok {
                Ok((slot, target as usize))
            } else {
                Err(bad(slot))
            }
        })
        .collect()
}

fn check_name(name: &str) -> Result<(), ElfError> {
    if name.is_empty() || name.contains('\0') {
        return Err(ElfError::BadName(name.to_string()));
    }
    Ok(())
}

/// The symbol table: the null symbol; with callbacks, `.text`'s section
/// symbol and the callbacks (local, static functions); then the programs,
/// the license and the maps, all global.
fn symtab(
    strtab: &mut Strtab,
    layout: Layout,
    code: &Code,
    license_len: usize,
    maps: &[MapBtf],
) -> Vec<u8> {
    let mut symtab = vec![0u8; 24];
    if layout.has_callbacks {
        symtab.extend_from_slice(&sym_bound(STB_LOCAL, 0, STT_SECTION, layout.text, 0, 0));
        for (name, start, len) in &code.callbacks {
            symtab.extend_from_slice(&sym_bound(
                STB_LOCAL,
                strtab.add(name),
                STT_FUNC,
                layout.text,
                *start as u64 * 8,
                *len as u64 * 8,
            ));
        }
    }
    for (name, start, len) in &code.symbols {
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
        layout.license,
        0,
        license_len as u64,
    ));
    for (i, m) in maps.iter().enumerate() {
        let off = (i as u32 * MAP_DEF_SIZE) as u64;
        symtab.extend_from_slice(&sym(
            strtab.add(&m.name),
            STT_OBJECT,
            layout.maps,
            off,
            MAP_DEF_SIZE as u64,
        ));
    }
    symtab
}

/// One `R_BPF_64_64` entry per map reference, to the map's symbol, and per
/// callback reference, to `.text`'s section symbol (1).
fn relocations(
    map_refs: &[(usize, usize)],
    func_refs: &[(usize, u32)],
    first_map_sym: u64,
) -> Vec<u8> {
    let mut rel = Vec::new();
    let refs = (map_refs.iter()).map(|&(slot, map)| (slot, first_map_sym + map as u64));
    let mut all: Vec<(usize, u64)> = refs
        .chain(func_refs.iter().map(|&(slot, _)| (slot, 1)))
        .collect();
    all.sort_unstable();
    for (slot, symbol) in all {
        rel.extend_from_slice(&(slot as u64 * 8).to_le_bytes());
        rel.extend_from_slice(&((symbol << 32) | R_BPF_64_64).to_le_bytes());
    }
    rel
}

/// What each section holds; those the layout leaves out are not written.
struct Contents {
    code: Vec<u8>,
    rel: Vec<u8>,
    text: Vec<u8>,
    rel_text: Vec<u8>,
    license: Vec<u8>,
    maps: Vec<u8>,
    btf: Vec<u8>,
    btf_ext: Vec<u8>,
    symtab: Vec<u8>,
}

/// The sections after the null one, in the layout's order. `.strtab`'s
/// contents are left empty: its names are still being added here.
fn section_headers(prog_sec: &str, strtab: &mut Strtab, layout: Layout, c: Contents) -> Vec<Shdr> {
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
    let rel = |name: u32, of: u16, data: Vec<u8>| Shdr {
        link: layout.symtab as u32,
        info: of as u32,
        entsize: 16,
        ..Shdr::new(name, SHT_REL, 0, data, 8)
    };
    if layout.has_maps || layout.has_callbacks {
        let name = strtab.add(&format!(".rel{prog_sec}"));
        sections.push(rel(name, Layout::PROG, c.rel));
    }
    if layout.has_callbacks {
        sections.push(Shdr::new(
            strtab.add(".text"),
            SHT_PROGBITS,
            SHF_ALLOC | SHF_EXECINSTR,
            c.text,
            8,
        ));
        let name = strtab.add(".rel.text");
        sections.push(rel(name, layout.text, c.rel_text));
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
    if layout.has_callbacks {
        sections.push(Shdr::new(
            strtab.add(".BTF.ext"),
            SHT_PROGBITS,
            0,
            c.btf_ext,
            4,
        ));
    }
    let name = strtab.add(".symtab");
    // info: the index of the first global symbol, after the locals.
    let locals = c
        .symtab
        .chunks(24)
        .filter(|s| s[4] >> 4 == STB_LOCAL)
        .count() as u32;
    sections.push(Shdr {
        link: 1,
        info: locals,
        entsize: 24,
        ..Shdr::new(name, SHT_SYMTAB, 0, c.symtab, 8)
    });
    debug_assert_eq!(sections.len(), layout.symtab as usize);
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
