//! Just enough of ELF64 (little endian) to pull the executable sections
//! out of a relocatable object clang wrote.

/// (section name, bytes) of every `SHT_PROGBITS` section with
/// `SHF_EXECINSTR`, in section order.
pub fn code_sections(file: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let u16_at = |o: usize| {
        file.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or("truncated")
    };
    let u32_at = |o: usize| {
        file.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated")
    };
    let u64_at = |o: usize| {
        file.get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .ok_or("truncated")
    };
    if file.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let shoff = u64_at(0x28)? as usize;
    let shentsize = u16_at(0x3a)? as usize;
    let shnum = u16_at(0x3c)? as usize;
    let shstrndx = u16_at(0x3e)? as usize;
    let header = |i: usize| shoff + i * shentsize;
    let slice = |off: u64, size: u64| -> Result<&[u8], String> {
        let (off, size) = (off as usize, size as usize);
        file.get(off..off.checked_add(size).ok_or("overflow")?)
            .ok_or_else(|| "section past the end of the file".to_string())
    };
    let strtab = slice(
        u64_at(header(shstrndx) + 24)?,
        u64_at(header(shstrndx) + 32)?,
    )?;
    let name_at = |o: usize| -> String {
        let rest = strtab.get(o..).unwrap_or_default();
        String::from_utf8_lossy(&rest[..rest.iter().position(|b| *b == 0).unwrap_or(rest.len())])
            .into_owned()
    };
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = header(i);
        let (kind, flags) = (u32_at(h + 4)?, u64_at(h + 8)?);
        const SHT_PROGBITS: u32 = 1;
        const SHF_EXECINSTR: u64 = 4;
        if kind == SHT_PROGBITS && flags & SHF_EXECINSTR != 0 {
            let bytes = slice(u64_at(h + 24)?, u64_at(h + 32)?)?;
            if !bytes.is_empty() {
                out.push((name_at(u32_at(h)? as usize), bytes.to_vec()));
            }
        }
    }
    Ok(out)
}
