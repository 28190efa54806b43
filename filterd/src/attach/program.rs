//! What gets attached: an expression, a classic program or an eBPF ELF
//! object, turned into the ELF bytes aya loads for one hook. Pure: no
//! syscalls, so every input error is found before the kernel is touched.

use filter_programs::cbpf;
use filter_programs::codegen::{self, Dlt};
use filter_programs::ebpf::insn::{from_bytes, Insn};
use filter_programs::elf::{self, Object};
use filter_programs::translate::{self, Target};
use filter_programs::Hook;

use super::AttachError;

/// Where the program comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A pcap-filter expression, compiled for Ethernet (EN10MB).
    Expr(String),
    /// A classic program (e.g. parsed from `tcpdump -ddd` output).
    Cbpf(Vec<cbpf::Insn>),
    /// A relocatable BPF ELF object with one program in the hook's
    /// section (`xdp` or `classifier`).
    Elf(Vec<u8>),
}

/// ELF bytes ready for aya, with the instructions kept for showing next to
/// a verifier log.
#[derive(Clone, Debug)]
pub struct Program {
    pub elf: Vec<u8>,
    /// The program's symbol: aya's name for it, and the kernel's (first 15
    /// characters).
    pub name: String,
    pub hook: Hook,
    pub insns: Vec<Insn>,
}

impl Program {
    pub fn build(source: &Source, hook: Hook) -> Result<Program, AttachError> {
        let classic = match source {
            Source::Elf(bytes) => return Program::from_elf(bytes.clone(), hook),
            Source::Cbpf(prog) => prog.clone(),
            Source::Expr(expr) => codegen::compile(expr, &codegen::Options::new(Dlt::En10mb))
                .map_err(|e| AttachError::Invalid(e.render()))?,
        };
        let insns =
            translate::translate(&classic, Target::new(hook).with_loops(bpf_kernel::loops()))
                .map_err(|e| AttachError::Invalid(format!("translating for {hook:?}: {e}")))?;
        Program::from_object(&Object {
            hook,
            name: "filter".into(),
            insns,
            maps: vec![],
            map_refs: vec![],
            license: "GPL".into(),
        })
    }

    /// A program written by the caller, with maps (the daemon's).
    pub fn from_object(obj: &Object) -> Result<Program, AttachError> {
        let elf = elf::write(obj)
            .map_err(|e| AttachError::Invalid(format!("writing the ELF object: {e}")))?;
        Ok(Program {
            elf,
            name: obj.name.clone(),
            hook: obj.hook,
            insns: obj.insns.clone(),
        })
    }

    /// Checks that `bytes` hold a program for `hook`, and finds its name
    /// and instructions.
    pub fn from_elf(bytes: Vec<u8>, hook: Hook) -> Result<Program, AttachError> {
        let want = hook.section();
        let (name, code) = find_program(&bytes, want).map_err(AttachError::Invalid)?;
        let insns =
            from_bytes(&code).map_err(|e| AttachError::Invalid(format!("section {want}: {e}")))?;
        Ok(Program {
            elf: bytes,
            name,
            hook,
            insns,
        })
    }
}

fn rd<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], String> {
    b.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("truncated ELF object (reading {N} bytes at {off})"))
}
fn u16_at(b: &[u8], off: usize) -> Result<usize, String> {
    Ok(u16::from_le_bytes(rd(b, off)?) as usize)
}
fn u32_at(b: &[u8], off: usize) -> Result<usize, String> {
    Ok(u32::from_le_bytes(rd(b, off)?) as usize)
}
fn u64_at(b: &[u8], off: usize) -> Result<usize, String> {
    usize::try_from(u64::from_le_bytes(rd(b, off)?))
        .map_err(|_| "ELF offset out of range".to_string())
}
fn cstr(b: &[u8], off: usize) -> Result<String, String> {
    let tail = b.get(off..).ok_or("ELF string offset out of range")?;
    let end = tail
        .iter()
        .position(|c| *c == 0)
        .ok_or("unterminated ELF string")?;
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}

/// The name of the function symbol in section `want` and that section's
/// bytes. Only what aya itself will need is checked: a 64-bit
/// little-endian BPF object with that section and a symbol in it.
fn find_program(b: &[u8], want: &str) -> Result<(String, Vec<u8>), String> {
    if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF object".into());
    }
    if u16_at(b, 18)? != 247 {
        return Err("not a BPF ELF object (e_machine is not EM_BPF)".into());
    }
    let (shoff, shnum, shstrndx) = (u64_at(b, 40)?, u16_at(b, 60)?, u16_at(b, 62)?);
    let sh = |i: usize| -> Result<(usize, usize, usize, usize, usize), String> {
        let h = shoff
            .checked_add(i.checked_mul(64).ok_or("ELF overflow")?)
            .ok_or("ELF overflow")?;
        // name, type, offset, size, link
        Ok((
            u32_at(b, h)?,
            u32_at(b, h + 4)?,
            u64_at(b, h + 24)?,
            u64_at(b, h + 32)?,
            u32_at(b, h + 40)?,
        ))
    };
    let strtab = sh(shstrndx)?.2;
    let mut found = None;
    let mut symtab = None;
    let mut names = Vec::new();
    for i in 0..shnum {
        let (name, kind, off, size, link) = sh(i)?;
        let name = cstr(b, strtab + name)?;
        if kind == 2 {
            symtab = Some((off, size, link));
        }
        if name == want {
            let code = b
                .get(off..off.saturating_add(size))
                .ok_or("section past the end of the file")?;
            found = Some((i, code.to_vec()));
        } else if !name.is_empty() && !name.starts_with('.') {
            names.push(name);
        }
    }
    let Some((index, code)) = found else {
        return Err(format!(
            "the object has no `{want}` section (sections: {})",
            names.join(", ")
        ));
    };
    let (off, size, link) = symtab.ok_or("the object has no symbol table")?;
    let names_off = sh(link)?.2;
    for s in (off..off + size).step_by(24).skip(1) {
        let (name, info, shndx) = (
            u32_at(b, s)?,
            *b.get(s + 4).ok_or("truncated symbol")?,
            u16_at(b, s + 6)?,
        );
        if shndx == index && info & 0xf == 2 {
            return Ok((cstr(b, names_off + name)?, code));
        }
    }
    Err(format!("no function symbol in section `{want}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_become_objects_for_each_hook() {
        for hook in [Hook::Xdp, Hook::Tc] {
            let p = Program::build(&Source::Expr("tcp port 80".into()), hook).expect("builds");
            assert_eq!(p.name, "filter");
            let again = Program::from_elf(p.elf.clone(), hook).expect("reads back");
            assert_eq!(again.insns, p.insns);
            assert_eq!(again.name, "filter");
        }
    }

    #[test]
    fn wrong_hook_and_garbage_are_invalid() {
        let p = Program::build(&Source::Expr("udp".into()), Hook::Tc).expect("builds");
        let e = Program::from_elf(p.elf.clone(), Hook::Xdp).expect_err("no xdp section");
        assert!(e.to_string().contains("no `xdp` section"), "{e}");
        assert!(e.is_invalid_program());
        for bad in [&b""[..], b"\x7fELF", &p.elf[..100]] {
            assert!(matches!(
                Program::from_elf(bad.to_vec(), Hook::Tc),
                Err(AttachError::Invalid(_))
            ));
        }
        let e = Program::build(&Source::Expr("tcp port".into()), Hook::Xdp).expect_err("syntax");
        assert!(e.is_invalid_program());
    }
}
