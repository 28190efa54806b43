//! What the VM accepts as a map, checked before anything is allocated for
//! it: a map definition can come from a file we did not write, and sizes
//! taken on trust (an array of 0xffff_ffff values of 0xffff bytes) would
//! abort the process on allocation, or wrap the 32-bit offsets of the map
//! region (see `memory`) into another map's.
//!
//! The rules are the kernel's where it has one (`array_map_alloc_check`,
//! `htab_map_alloc_check`, `fd_array_map_alloc_check`); the kernel bounds
//! the total by the memory cgroup, the VM by [`MAX_TOTAL_BYTES`].

use super::{MapDef, MapKind};

/// Most maps in one [`super::Maps`]: a map value address names its map in
/// 8 bits (see `memory`). The kernel lets one program use 64.
pub const MAX_MAPS: usize = 256;
/// Longest hash map key: the kernel's `MAX_BPF_STACK`, since a program
/// builds its keys on its 512-byte stack.
pub const MAX_KEY_SIZE: u32 = 512;
/// Largest value of a map that is not per CPU: the kernel's
/// `KMALLOC_MAX_SIZE` on x86-64 (4 MiB), beyond which user space cannot
/// read an element.
pub const MAX_VALUE_SIZE: u32 = 4 << 20;
/// Largest value of a per-CPU map: the kernel's `PCPU_MIN_UNIT_SIZE`.
pub const MAX_PERCPU_VALUE_SIZE: u32 = 32 << 10;
/// Most bytes all the maps of one [`super::Maps`] may take, every map
/// counted full (`max_entries` entries of every CPU's value, and for a
/// hash its keys and [`HASH_ENTRY_OVERHEAD`]).
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// What a hash entry costs besides its key and values: its slot in the
/// key index and the key's own allocation.
pub const HASH_ENTRY_OVERHEAD: u64 = 64;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{count} maps, but the VM's addresses name at most {MAX_MAPS}")]
    TooMany { count: usize },
    #[error("map {map} ({kind:?}): {reason}")]
    Def {
        map: usize,
        kind: MapKind,
        reason: String,
    },
    #[error(
        "map {map} ({kind:?}): max_entries {max_entries} takes up to {bytes} bytes, \
         {total} with the maps before it: over the VM's limit of {MAX_TOTAL_BYTES} bytes (64 MiB)"
    )]
    TooBig {
        map: usize,
        kind: MapKind,
        max_entries: u32,
        bytes: u64,
        total: u64,
    },
}

/// Checks every definition, each as the kernel would and all together
/// against [`MAX_TOTAL_BYTES`], with `copies` values per entry of a per-CPU
/// map.
pub(super) fn check(defs: &[MapDef], copies: u32) -> Result<(), MapError> {
    if defs.len() > MAX_MAPS {
        return Err(MapError::TooMany { count: defs.len() });
    }
    let mut total = 0u64;
    for (map, def) in defs.iter().enumerate() {
        let fail = |reason: String| MapError::Def {
            map,
            kind: def.kind,
            reason,
        };
        check_def(def).map_err(fail)?;
        let bytes = full_size(def, copies);
        total = total.saturating_add(bytes);
        if total > MAX_TOTAL_BYTES {
            return Err(MapError::TooBig {
                map,
                kind: def.kind,
                max_entries: def.max_entries,
                bytes,
                total,
            });
        }
    }
    Ok(())
}

/// One definition's sizes, in the kernel's order of checks.
fn check_def(def: &MapDef) -> Result<(), String> {
    for (field, v) in [
        ("max_entries", def.max_entries),
        ("key_size", def.key_size),
        ("value_size", def.value_size),
    ] {
        if v == 0 {
            return Err(format!("{field} is 0"));
        }
    }
    match def.kind {
        MapKind::Array | MapKind::PerCpuArray | MapKind::ProgArray if def.key_size != 4 => {
            return Err(format!(
                "key_size is {}, but an array's key is a 4-byte index",
                def.key_size
            ));
        }
        MapKind::LpmTrie if !(5..=260).contains(&def.key_size) => {
            return Err(format!(
                "key_size is {}, but an LPM trie's key is a 4-byte prefix length and 1 to 256 bytes",
                def.key_size
            ));
        }
        MapKind::Hash | MapKind::PerCpuHash if def.key_size > MAX_KEY_SIZE => {
            return Err(format!(
                "key_size is {}, over {MAX_KEY_SIZE} (MAX_BPF_STACK: keys are built on the stack)",
                def.key_size
            ));
        }
        _ => {}
    }
    let (max, why) = match def.kind {
        MapKind::ProgArray if def.value_size != 4 => {
            return Err(format!(
                "value_size is {}, but a program array holds 4-byte program references",
                def.value_size
            ));
        }
        MapKind::PerCpuArray | MapKind::PerCpuHash => (
            MAX_PERCPU_VALUE_SIZE,
            "PCPU_MIN_UNIT_SIZE, for a per-CPU value",
        ),
        _ => (MAX_VALUE_SIZE, "KMALLOC_MAX_SIZE"),
    };
    if def.value_size > max {
        return Err(format!(
            "value_size is {}, over {max} ({why})",
            def.value_size
        ));
    }
    Ok(())
}

/// The bytes a map takes with every entry present.
pub(super) fn full_size(def: &MapDef, copies: u32) -> u64 {
    let copies = if def.kind.per_cpu() { copies } else { 1 } as u64;
    let values = copies.saturating_mul(def.value_size as u64);
    let entry = match def.kind {
        MapKind::Hash | MapKind::PerCpuHash | MapKind::LpmTrie => values
            .saturating_add(def.key_size as u64)
            .saturating_add(HASH_ENTRY_OVERHEAD),
        _ => values,
    };
    entry.saturating_mul(def.max_entries as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: MapKind, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
        MapDef {
            kind,
            key_size,
            value_size,
            max_entries,
        }
    }

    fn err(defs: &[MapDef], copies: u32) -> String {
        check(defs, copies).unwrap_err().to_string()
    }

    #[test]
    fn the_kernels_size_rules_hold() {
        let cases = [
            (
                def(MapKind::Hash, 4, 8, 0),
                "map 0 (Hash): max_entries is 0",
            ),
            (def(MapKind::Hash, 0, 8, 1), "map 0 (Hash): key_size is 0"),
            (
                def(MapKind::Array, 4, 0, 1),
                "map 0 (Array): value_size is 0",
            ),
            (
                def(MapKind::PerCpuArray, 8, 8, 1),
                "map 0 (PerCpuArray): key_size is 8, but an array's key is a 4-byte index",
            ),
            (
                def(MapKind::Hash, 513, 8, 1),
                "map 0 (Hash): key_size is 513, over 512 (MAX_BPF_STACK: keys are built on the stack)",
            ),
            (
                def(MapKind::ProgArray, 4, 8, 1),
                "map 0 (ProgArray): value_size is 8, but a program array holds 4-byte program references",
            ),
            (
                def(MapKind::Array, 4, (4 << 20) + 1, 1),
                "map 0 (Array): value_size is 4194305, over 4194304 (KMALLOC_MAX_SIZE)",
            ),
            (
                def(MapKind::PerCpuHash, 4, 32769, 1),
                "map 0 (PerCpuHash): value_size is 32769, over 32768 (PCPU_MIN_UNIT_SIZE, for a per-CPU value)",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(err(&[d], 1), want, "{d:?}");
        }
        // The largest of each is accepted.
        let largest = [
            def(MapKind::Hash, 512, 8, 1),
            def(MapKind::Array, 4, 4 << 20, 1),
            def(MapKind::PerCpuArray, 4, 32 << 10, 1),
            def(MapKind::ProgArray, 4, 4, 1),
        ];
        assert_eq!(check(&largest, 4), Ok(()));
    }

    #[test]
    fn the_maps_together_stay_under_64_mib() {
        // The hostile definition: 0xffff_ffff values of 0xffff bytes.
        assert_eq!(
            err(&[def(MapKind::Array, 4, 0xffff, u32::MAX)], 1),
            "map 0 (Array): max_entries 4294967295 takes up to 281470681677825 bytes, \
             281470681677825 with the maps before it: over the VM's limit of 67108864 bytes (64 MiB)"
        );
        // 64 MiB exactly fits; one more map of one byte does not.
        let full = def(MapKind::Array, 4, 1 << 10, 1 << 16);
        assert_eq!(check(&[full], 1), Ok(()));
        assert_eq!(
            err(&[full, def(MapKind::Array, 4, 1, 1)], 1),
            "map 1 (Array): max_entries 1 takes up to 1 bytes, \
             67108865 with the maps before it: over the VM's limit of 67108864 bytes (64 MiB)"
        );
        // Per-CPU values count once per CPU; hash entries their key and
        // bookkeeping too.
        let per_cpu = def(MapKind::PerCpuArray, 4, 1 << 10, 1 << 14);
        assert_eq!(check(&[per_cpu], 4), Ok(()));
        assert!(matches!(
            check(&[per_cpu], 5),
            Err(MapError::TooBig { bytes, .. }) if bytes == 5 << 24
        ));
        let hash = def(MapKind::Hash, 16, 48, 1 << 19);
        assert_eq!(check(&[hash], 1), Ok(()));
        assert!(matches!(
            check(&[MapDef { key_size: 17, ..hash }], 1),
            Err(MapError::TooBig { bytes, .. }) if bytes == 129 << 19
        ));
    }

    #[test]
    fn at_most_256_maps() {
        let one = def(MapKind::Array, 4, 8, 1);
        assert_eq!(check(&[one; 256], 1), Ok(()));
        assert_eq!(
            err(&[one; 257], 1),
            "257 maps, but the VM's addresses name at most 256"
        );
    }
}
