//! Reads the programs out of a relocatable BPF ELF object: ours (see
//! [`super::write`]) or clang's (`clang -target bpf -O2 -c`).
//!
//! Only what running a program needs: its section, its instructions, the
//! functions defined in it and how many relocations point into it (a
//! program with relocations refers to maps or to other sections, which a
//! caller that only runs instructions must refuse). Every offset and size
//! from the file is bounds-checked; bad input is an error, never a panic.

use crate::ebpf::insn::{from_bytes, Insn};

const EM_BPF: u16 = 247;
const ET_REL: u16 = 1;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_REL: u32 = 9;
const SHF_EXECINSTR: u64 = 4;
const STT_FUNC: u8 = 2;
const EHDR_LEN: usize = 64;
const SHDR_LEN: usize = 64;
const SYM_LEN: usize = 24;
const REL_LEN: usize = 16;

/// One section of executable code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgSection {
    /// The section's name (`xdp`, `socket`, `classifier`, `tc/ingress`, ...).
    pub name: String,
    pub insns: Vec<Insn>,
    /// Names of the function symbols defined in the section, by offset.
    pub functions: Vec<String>,
    /// Relocation entries that apply to the section.
    pub relocations: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    #[error(
        "not a 64-bit little-endian ELF (class {class}, data {data}); only bpfel objects are read"
    )]
    NotLe64 { class: u8, data: u8 },
    #[error("ELF machine {0} is not BPF (247)")]
    NotBpf(u16),
    #[error("ELF type {0} is not a relocatable object (1)")]
    NotRelocatable(u16),
    #[error("{what} at byte {offset} runs past the end of the {len}-byte file")]
    OutOfBounds {
        what: String,
        offset: u64,
        len: usize,
    },
    #[error("section {name}: {size} bytes is not a whole number of instructions")]
    Ragged { name: String, size: u64 },
    #[error("section {name}: {reason}")]
    BadInsn { name: String, reason: String },
    #[error("section header size {0} is not 64")]
    BadShentsize(u16),
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

/// `len` bytes at `offset` of `file`, or why not.
fn slice<'a>(file: &'a [u8], offset: u64, len: u64, what: &str) -> Result<&'a [u8], ReadError> {
    let oob = || ReadError::OutOfBounds {
        what: what.to_string(),
        offset,
        len: file.len(),
    };
    let start = usize::try_from(offset).map_err(|_| oob())?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .ok_or_else(oob)?;
    file.get(start..end).ok_or_else(oob)
}

/// The NUL-terminated name at `offset` of a string table.
fn name_at(strtab: &[u8], offset: u32) -> String {
    let tail = strtab.get(offset as usize..).unwrap_or(&[]);
    let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

/// Every non-empty executable section of the object, in file order.
pub fn programs(file: &[u8]) -> Result<Vec<ProgSection>, ReadError> {
    if file.len() < 4 || &file[..4] != b"\x7fELF" {
        return Err(ReadError::NotElf);
    }
    let ehdr = slice(file, 0, EHDR_LEN as u64, "ELF header")?;
    if ehdr[4] != 2 || ehdr[5] != 1 {
        return Err(ReadError::NotLe64 {
            class: ehdr[4],
            data: ehdr[5],
        });
    }
    let (e_type, machine) = (u16_at(ehdr, 16), u16_at(ehdr, 18));
    if machine != EM_BPF {
        return Err(ReadError::NotBpf(machine));
    }
    if e_type != ET_REL {
        return Err(ReadError::NotRelocatable(e_type));
    }
    let shoff = u64_at(ehdr, 40);
    let shentsize = u16_at(ehdr, 58);
    let shnum = u16_at(ehdr, 60) as u64;
    let shstrndx = u16_at(ehdr, 62) as usize;
    if shnum > 0 && shentsize as usize != SHDR_LEN {
        return Err(ReadError::BadShentsize(shentsize));
    }
    let table = slice(file, shoff, shnum * SHDR_LEN as u64, "section header table")?;
    let shdrs: Vec<Shdr> = table
        .chunks_exact(SHDR_LEN)
        .map(|h| Shdr {
            name: u32_at(h, 0),
            kind: u32_at(h, 4),
            flags: u64_at(h, 8),
            offset: u64_at(h, 24),
            size: u64_at(h, 32),
            link: u32_at(h, 40),
            info: u32_at(h, 44),
        })
        .collect();
    let shstrtab = match shdrs.get(shstrndx) {
        Some(s) => slice(file, s.offset, s.size, "section name table")?,
        None => &[][..],
    };
    let names: Vec<String> = shdrs.iter().map(|s| name_at(shstrtab, s.name)).collect();
    let functions = function_symbols(file, &shdrs)?;
    let mut out = Vec::new();
    for (i, s) in shdrs.iter().enumerate() {
        if s.kind != SHT_PROGBITS || s.flags & SHF_EXECINSTR == 0 || s.size == 0 {
            continue;
        }
        let name = names[i].clone();
        let bytes = slice(file, s.offset, s.size, &format!("section {name}"))?;
        if bytes.len() % 8 != 0 {
            return Err(ReadError::Ragged { name, size: s.size });
        }
        let insns = from_bytes(bytes).map_err(|e| ReadError::BadInsn {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let relocations = shdrs
            .iter()
            .filter(|r| r.kind == SHT_REL && r.info as usize == i)
            .map(|r| (r.size / REL_LEN as u64) as usize)
            .sum();
        let mut funcs: Vec<(u64, String)> = functions
            .iter()
            .filter(|(shndx, _, _)| *shndx == i)
            .map(|(_, v, n)| (*v, n.clone()))
            .collect();
        funcs.sort();
        out.push(ProgSection {
            name,
            insns,
            functions: funcs.into_iter().map(|(_, n)| n).collect(),
            relocations,
        });
    }
    Ok(out)
}

/// (section index, value, name) of every function symbol.
fn function_symbols(file: &[u8], shdrs: &[Shdr]) -> Result<Vec<(usize, u64, String)>, ReadError> {
    let mut out = Vec::new();
    for s in shdrs.iter().filter(|s| s.kind == SHT_SYMTAB) {
        let syms = slice(file, s.offset, s.size, "symbol table")?;
        let strtab = match shdrs.get(s.link as usize) {
            Some(t) => slice(file, t.offset, t.size, "symbol name table")?,
            None => &[][..],
        };
        for sym in syms.chunks_exact(SYM_LEN) {
            if sym[4] & 0xf == STT_FUNC {
                out.push((
                    u16_at(sym, 6) as usize,
                    u64_at(sym, 8),
                    name_at(strtab, u32_at(sym, 0)),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{write, Object};
    use crate::Hook;

    fn object(hook: Hook) -> Vec<u8> {
        // mov r0, 2; exit
        let insns = vec![Insn::new(0xb7, 0, 0, 0, 2), Insn::new(0x95, 0, 0, 0, 0)];
        write(&Object {
            hook,
            name: "filter".into(),
            insns,
            maps: vec![],
            map_refs: vec![],
            license: "GPL".into(),
        })
        .unwrap()
    }

    #[test]
    fn reads_back_what_we_write() {
        for hook in Hook::ALL {
            let progs = programs(&object(hook)).unwrap();
            assert_eq!(progs.len(), 1);
            assert_eq!(progs[0].name, hook.section());
            assert_eq!(
                progs[0].insns,
                [Insn::new(0xb7, 0, 0, 0, 2), Insn::new(0x95, 0, 0, 0, 0)]
            );
            assert_eq!(progs[0].functions, ["filter"]);
            assert_eq!(progs[0].relocations, 0);
        }
    }

    #[test]
    fn bad_objects_are_errors_at_every_cut() {
        let good = object(Hook::Xdp);
        assert_eq!(programs(b"MZ\0\0"), Err(ReadError::NotElf));
        let mut be = good.clone();
        be[5] = 2;
        assert!(matches!(programs(&be), Err(ReadError::NotLe64 { .. })));
        let mut x86 = good.clone();
        x86[18] = 62;
        assert_eq!(programs(&x86), Err(ReadError::NotBpf(62)));
        // Every truncation and every single-byte corruption: an error or a
        // result, never a panic.
        for n in 0..good.len() {
            let _ = programs(&good[..n]);
            let mut bad = good.clone();
            bad[n] ^= 0xff;
            let _ = programs(&bad);
        }
        assert!(matches!(
            programs(&good[..good.len() - 1]),
            Err(ReadError::OutOfBounds { .. })
        ));
    }
}
