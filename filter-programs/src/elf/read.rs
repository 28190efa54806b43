//! Reads the programs out of a relocatable BPF ELF object: ours (see
//! [`super::write`]) or clang's (`clang -target bpf -O2 -c`).
//!
//! Only what running a program needs: its section, its instructions, the
//! functions defined in it and how many relocations point into it (a
//! program with relocations refers to maps or to other sections, which a
//! caller that only runs instructions must refuse). Every offset and size
//! from the file is bounds-checked; bad input is an error, never a panic.
//!
//! Nor can a file make the reader allocate or scan much more than it
//! holds: headers may point at the same bytes many times over, so what the
//! reader keeps (instructions, names, function entries) is charged against
//! the file's length, a name is at most [`MAX_NAME`] bytes, and there is
//! one symbol table, read once.

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
/// Longest section or function name kept: the kernel's `KSYM_NAME_LEN`.
pub const MAX_NAME: usize = 512;

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
    #[error(
        "{what}: the name at byte {offset} of its string table is longer than {MAX_NAME} bytes"
    )]
    LongName { what: String, offset: u32 },
    #[error("more than one symbol table")]
    SymbolTables,
    #[error(
        "the sections and symbols to read take more than the file's {len} bytes \
         (headers that point at the same bytes)"
    )]
    Repeated { len: usize },
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

/// The NUL-terminated name at `offset` of a string table (`what` names
/// its owner for the error), scanning at most [`MAX_NAME`] bytes for the
/// NUL.
fn name_at(strtab: &[u8], offset: u32, what: impl Fn() -> String) -> Result<String, ReadError> {
    let tail = strtab.get(offset as usize..).unwrap_or(&[]);
    let head = &tail[..tail.len().min(MAX_NAME + 1)];
    let end = match head.iter().position(|b| *b == 0) {
        Some(end) => end,
        None if tail.len() <= MAX_NAME => tail.len(),
        None => {
            return Err(ReadError::LongName {
                what: what(),
                offset,
            })
        }
    };
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}

/// Bytes the reader may still keep: the file's length to begin with.
struct Allowance {
    left: usize,
    len: usize,
}

impl Allowance {
    fn take(&mut self, n: usize) -> Result<(), ReadError> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or(ReadError::Repeated { len: self.len })?;
        Ok(())
    }
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
    let code = |s: &Shdr| s.kind == SHT_PROGBITS && s.flags & SHF_EXECINSTR != 0 && s.size > 0;
    let mut keep = Allowance {
        left: file.len(),
        len: file.len(),
    };
    let mut functions = function_symbols(file, &shdrs, code, &mut keep)?;
    let mut relocations = vec![0usize; shdrs.len()];
    for r in shdrs.iter().filter(|r| r.kind == SHT_REL) {
        if let Some(n) = relocations.get_mut(r.info as usize) {
            *n = n.saturating_add((r.size / REL_LEN as u64) as usize);
        }
    }
    let mut out = Vec::new();
    for (i, s) in shdrs.iter().enumerate() {
        if !code(s) {
            continue;
        }
        let name = name_at(shstrtab, s.name, || format!("section {i}"))?;
        let bytes = slice(file, s.offset, s.size, &format!("section {name}"))?;
        if bytes.len() % 8 != 0 {
            return Err(ReadError::Ragged { name, size: s.size });
        }
        keep.take(name.len() + bytes.len())?;
        let insns = from_bytes(bytes).map_err(|e| ReadError::BadInsn {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        out.push(ProgSection {
            name,
            insns,
            functions: std::mem::take(&mut functions[i])
                .into_iter()
                .map(|(_, n)| n)
                .collect(),
            relocations: relocations[i],
        });
    }
    Ok(out)
}

/// The function symbols in each section that `code` accepts, by value,
/// from the (one) symbol table.
fn function_symbols(
    file: &[u8],
    shdrs: &[Shdr],
    code: impl Fn(&Shdr) -> bool,
    keep: &mut Allowance,
) -> Result<Vec<Vec<(u64, String)>>, ReadError> {
    let mut out = vec![Vec::new(); shdrs.len()];
    let mut tables = shdrs.iter().filter(|s| s.kind == SHT_SYMTAB);
    let Some(s) = tables.next() else {
        return Ok(out);
    };
    if tables.next().is_some() {
        return Err(ReadError::SymbolTables);
    }
    let syms = slice(file, s.offset, s.size, "symbol table")?;
    let strtab = match shdrs.get(s.link as usize) {
        Some(t) => slice(file, t.offset, t.size, "symbol name table")?,
        None => &[][..],
    };
    for (n, sym) in syms.chunks_exact(SYM_LEN).enumerate() {
        let shndx = u16_at(sym, 6) as usize;
        if sym[4] & 0xf != STT_FUNC || !shdrs.get(shndx).is_some_and(&code) {
            continue;
        }
        let name = name_at(strtab, u32_at(sym, 0), || format!("symbol {n}"))?;
        keep.take(SYM_LEN + name.len())?;
        out[shndx].push((u64_at(sym, 8), name));
    }
    for f in &mut out {
        f.sort();
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

    /// A section header: (name offset, type, flags, offset, size, link).
    type Header = (u32, u32, u64, u64, u64, u32);

    /// An ELF object of `body` (at byte 64) and the headers (after a null
    /// one), whose section 1 names the sections.
    fn raw(body: &[u8], headers: &[Header]) -> Vec<u8> {
        let mut f = object(Hook::Xdp)[..64].to_vec();
        f.extend_from_slice(body);
        let shoff = f.len() as u64;
        f[40..48].copy_from_slice(&shoff.to_le_bytes());
        f[60..62].copy_from_slice(&(headers.len() as u16 + 1).to_le_bytes());
        f[62..64].copy_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&[0; 64]);
        for &(name, kind, flags, offset, size, link) in headers {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&offset.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[40..44].copy_from_slice(&link.to_le_bytes());
            f.extend_from_slice(&h);
        }
        f
    }

    const STRTAB: u32 = 3;
    const CODE: (u32, u64) = (SHT_PROGBITS, SHF_EXECINSTR);

    /// `mov r0, 2; exit`, then a string table of `name` between NULs.
    fn code_and_name(name: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&[0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
        body.push(0);
        body.extend_from_slice(name);
        body.push(0);
        body
    }

    #[test]
    fn names_are_at_most_512_bytes() {
        for (len, ok) in [(512, true), (513, false)] {
            let body = code_and_name(&vec![b'x'; len]);
            let f = raw(
                &body,
                &[
                    (0, STRTAB, 0, 64 + 16, body.len() as u64 - 16, 0),
                    (1, CODE.0, CODE.1, 64, 16, 0),
                ],
            );
            match programs(&f) {
                Ok(p) if ok => assert_eq!(p[0].name.len(), len),
                got => assert_eq!(
                    got.unwrap_err().to_string(),
                    "section 2: the name at byte 1 of its string table is longer than 512 bytes"
                ),
            }
        }
    }

    /// 2,000 headers of one 16-byte program named `xdp`: the reader keeps
    /// 38,000 bytes of a 128,000-byte file. 2,000 headers of a 64,000-byte
    /// program would make it keep 128 MB of a 192 KB file.
    #[test]
    fn repeated_headers_cannot_multiply_what_is_kept() {
        let body = code_and_name(b"xdp");
        let mut headers = vec![(0, STRTAB, 0, 64 + 16, 5, 0)];
        headers.extend([(1, CODE.0, CODE.1, 64, 16, 0); 2000]);
        let progs = programs(&raw(&body, &headers)).unwrap();
        assert_eq!(progs.len(), 2000);
        let mut long = vec![0u8; 64_000];
        for insn in long.chunks_exact_mut(8) {
            insn[0] = 0x95;
        }
        let mut headers = vec![(0, STRTAB, 0, 65, 1, 0)];
        headers.extend([(0, CODE.0, CODE.1, 64, 64_000, 0); 2000]);
        let f = raw(&long, &headers);
        assert_eq!(
            programs(&f).unwrap_err().to_string(),
            format!(
                "the sections and symbols to read take more than the file's {} bytes \
                 (headers that point at the same bytes)",
                f.len()
            )
        );
    }

    #[test]
    fn one_symbol_table() {
        let body = code_and_name(b"xdp");
        let symtab = (0, SHT_SYMTAB, 0, 64, 0, 1);
        let f = raw(
            &body,
            &[
                (0, STRTAB, 0, 64 + 16, 5, 0),
                (1, CODE.0, CODE.1, 64, 16, 0),
                symtab,
                symtab,
            ],
        );
        assert_eq!(programs(&f), Err(ReadError::SymbolTables));
    }
}
