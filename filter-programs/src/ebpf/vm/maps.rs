//! User-space maps for the VM: arrays and hashes, plain or per CPU, with
//! the kernel's helper semantics (lookup gives a pointer into the value,
//! update honours `BPF_ANY`/`BPF_NOEXIST`/`BPF_EXIST`).
//!
//! Definitions are checked against [`limits`] before anything is
//! allocated. Arrays are allocated whole; a hash map grows one entry at a
//! time as keys are added, never past `max_entries`.

mod limits;

use std::collections::HashMap;

pub use limits::{
    MapError, HASH_ENTRY_OVERHEAD, MAX_KEY_SIZE, MAX_MAPS, MAX_PERCPU_VALUE_SIZE, MAX_TOTAL_BYTES,
    MAX_VALUE_SIZE,
};

use super::memory::{read_le, write_le};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Array,
    PerCpuArray,
    Hash,
    PerCpuHash,
    /// `BPF_MAP_TYPE_LPM_TRIE`: keys are a `u32` prefix length then the
    /// data; a lookup finds the longest stored prefix of the key.
    LpmTrie,
    /// `BPF_MAP_TYPE_PROG_ARRAY`. Where the kernel stores program fds, the
    /// VM stores a program's position in the list given to
    /// `Program::run_chain`, plus one (0: empty slot).
    ProgArray,
}

impl MapKind {
    /// The kind of a `BPF_MAP_TYPE_*` number; `None` for the types the VM
    /// does not have.
    pub fn from_bpf(map_type: u32) -> Option<MapKind> {
        Some(match map_type {
            1 => MapKind::Hash,
            2 => MapKind::Array,
            3 => MapKind::ProgArray,
            5 => MapKind::PerCpuHash,
            6 => MapKind::PerCpuArray,
            11 => MapKind::LpmTrie,
            _ => return None,
        })
    }

    /// Its name as `bpftool map` prints it.
    pub fn bpf_name(self) -> &'static str {
        match self {
            MapKind::Hash => "hash",
            MapKind::Array => "array",
            MapKind::ProgArray => "prog_array",
            MapKind::PerCpuHash => "percpu_hash",
            MapKind::PerCpuArray => "percpu_array",
            MapKind::LpmTrie => "lpm_trie",
        }
    }

    fn per_cpu(self) -> bool {
        matches!(self, MapKind::PerCpuArray | MapKind::PerCpuHash)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
const ENOENT: i64 = -2;
const E2BIG: i64 = -7;
const EEXIST: i64 = -17;
const EINVAL: i64 = -22;

#[derive(Clone, Debug)]
struct Store {
    def: MapDef,
    /// Slots of `copies` values of `value_size` bytes: `max_entries` of
    /// them in an array; in a hash, as many as it has ever held at once.
    values: Vec<u8>,
    /// Hash maps: key bytes to slot.
    keys: HashMap<Vec<u8>, u32>,
    /// Hash maps: slots whose key was deleted, for reuse.
    free: Vec<u32>,
}

/// An LPM trie key cut to `len` bits (`None`: its own prefix length),
/// the data past them cleared; `None` when the length is past the data.
fn lpm_key(key: &[u8], len: Option<u32>) -> Option<Vec<u8>> {
    let own = read_le(key, 0, 4)? as u32;
    let len = len.unwrap_or(own);
    if len > 8 * (key.len() as u32).checked_sub(4)? {
        return None;
    }
    let mut k = key.to_vec();
    k[..4].copy_from_slice(&len.to_le_bytes());
    for (i, b) in k[4..].iter_mut().enumerate() {
        let keep = len.saturating_sub(8 * i as u32).min(8);
        *b &= (0xff00u16 >> keep) as u8;
    }
    Some(k)
}

/// The maps of one program, indexed as the program's `LD_IMM64` map
/// references number them.
#[derive(Clone, Debug)]
pub struct Maps {
    stores: Vec<Store>,
    ncpus: u32,
    /// The CPU the program runs on: selects the per-CPU copy.
    pub cpu: u32,
}

/// No maps, one CPU: what a program that references none runs with.
impl Default for Maps {
    fn default() -> Maps {
        Maps {
            stores: Vec::new(),
            ncpus: 1,
            cpu: 0,
        }
    }
}

impl Maps {
    /// The maps `defs` define, per-CPU ones with `ncpus` copies of each
    /// value; or, before anything is allocated, why the VM refuses them.
    pub fn new(defs: &[MapDef], ncpus: u32) -> Result<Maps, MapError> {
        let ncpus = ncpus.max(1);
        limits::check(defs, ncpus)?;
        let stores = defs
            .iter()
            .map(|&def| {
                let values = match def.kind {
                    MapKind::Hash | MapKind::PerCpuHash | MapKind::LpmTrie => Vec::new(),
                    // Checked: at most `MAX_TOTAL_BYTES`.
                    _ => vec![0; limits::full_size(&def, ncpus) as usize],
                };
                Store {
                    def,
                    values,
                    keys: HashMap::new(),
                    free: Vec::new(),
                }
            })
            .collect();
        Ok(Maps {
            stores,
            ncpus,
            cpu: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.stores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    pub fn def(&self, map: usize) -> Option<MapDef> {
        self.stores.get(map).map(|s| s.def)
    }

    fn copies(&self, def: MapDef) -> u32 {
        if def.kind.per_cpu() {
            self.ncpus
        } else {
            1
        }
    }

    fn slot_of(&self, map: usize, key: &[u8]) -> Option<u32> {
        let s = self.stores.get(map)?;
        match s.def.kind {
            MapKind::Array | MapKind::PerCpuArray | MapKind::ProgArray => {
                let i = read_le(key, 0, 4)? as u32;
                (i < s.def.max_entries).then_some(i)
            }
            MapKind::Hash | MapKind::PerCpuHash => s.keys.get(key).copied(),
            MapKind::LpmTrie => s.keys.get(&lpm_key(key, None)?).copied(),
        }
    }

    /// An LPM trie's entry for the longest stored prefix of `key`.
    fn longest_prefix(&self, map: usize, key: &[u8]) -> Option<u32> {
        let s = self.stores.get(map)?;
        let bits = read_le(key, 0, 4)? as u32;
        let data = 8 * (key.len() as u32).checked_sub(4)?;
        (0..=bits.min(data))
            .rev()
            .find_map(|len| s.keys.get(&lpm_key(key, Some(len))?).copied())
    }

    /// Byte offset of this CPU's value in `slot`, within the map's region.
    fn value_offset(&self, def: MapDef, slot: u32) -> u64 {
        let copy = if def.kind.per_cpu() {
            self.cpu.min(self.ncpus - 1)
        } else {
            0
        };
        (slot as u64 * self.copies(def) as u64 + copy as u64) * def.value_size as u64
    }

    /// `bpf_map_lookup_elem`: the offset of the value in the map's region.
    pub fn lookup(&self, map: usize, key: &[u8]) -> Option<u64> {
        let def = self.def(map)?;
        let slot = match def.kind {
            MapKind::LpmTrie => self.longest_prefix(map, key)?,
            _ => self.slot_of(map, key)?,
        };
        Some(self.value_offset(def, slot))
    }

    /// `bpf_map_update_elem` from a program (this CPU's copy).
    pub fn update(&mut self, map: usize, key: &[u8], value: &[u8], flags: u64) -> i64 {
        let Some(def) = self.def(map) else {
            return EINVAL;
        };
        if flags > BPF_EXIST {
            return EINVAL;
        }
        // An LPM trie stores the prefix, the bits past its length cleared.
        let key = match def.kind {
            MapKind::LpmTrie => match lpm_key(key, None) {
                Some(k) => k,
                None => return EINVAL,
            },
            _ => key.to_vec(),
        };
        let key = key.as_slice();
        let existing = self.slot_of(map, key);
        let slot = match (def.kind, existing) {
            (MapKind::Array | MapKind::PerCpuArray, None) => return E2BIG,
            (MapKind::Array | MapKind::PerCpuArray, Some(_)) if flags == BPF_NOEXIST => {
                return EEXIST
            }
            (_, Some(_)) if flags == BPF_NOEXIST => return EEXIST,
            (_, Some(s)) => s,
            (_, None) if flags == BPF_EXIST => return ENOENT,
            (_, None) => {
                let entry = self.copies(def) as usize * def.value_size as usize;
                let store = &mut self.stores[map];
                let slot = match store.free.pop() {
                    Some(s) => s,
                    None if store.keys.len() < def.max_entries as usize => {
                        let s = (store.values.len() / entry) as u32;
                        store.values.resize(store.values.len() + entry, 0);
                        s
                    }
                    None => return E2BIG,
                };
                store.keys.insert(key.to_vec(), slot);
                slot
            }
        };
        let off = self.value_offset(def, slot) as usize;
        let vs = def.value_size as usize;
        self.stores[map].values[off..off + vs].copy_from_slice(&value[..vs]);
        let _ = BPF_ANY;
        0
    }

    /// `bpf_map_delete_elem`.
    pub fn delete(&mut self, map: usize, key: &[u8]) -> i64 {
        let Some(def) = self.def(map) else {
            return EINVAL;
        };
        if matches!(def.kind, MapKind::Array | MapKind::PerCpuArray) {
            return EINVAL;
        }
        let key = match def.kind {
            MapKind::LpmTrie => match lpm_key(key, None) {
                Some(k) => k,
                None => return EINVAL,
            },
            _ => key.to_vec(),
        };
        let store = &mut self.stores[map];
        match store.keys.remove(&key) {
            Some(slot) => {
                let copies = if def.kind.per_cpu() { self.ncpus } else { 1 } as usize;
                let vs = def.value_size as usize;
                let off = slot as usize * copies * vs;
                store.values[off..off + copies * vs].fill(0);
                store.free.push(slot);
                0
            }
            None => ENOENT,
        }
    }

    /// A checked access to `size` bytes at `off` in a map's region: it must
    /// stay inside one value.
    fn check(&self, map: usize, off: u64, size: usize) -> Option<(usize, usize)> {
        let s = self.stores.get(map)?;
        let vs = s.def.value_size as u64;
        if vs == 0 || off % vs + size as u64 > vs {
            return None;
        }
        let start = usize::try_from(off).ok()?;
        (start + size <= s.values.len()).then_some((map, start))
    }

    pub fn read(&self, map: usize, off: u64, size: usize) -> Option<u64> {
        let (m, start) = self.check(map, off, size)?;
        read_le(&self.stores[m].values, start as u64, size)
    }

    pub fn write(&mut self, map: usize, off: u64, size: usize, v: u64) -> Option<()> {
        let (m, start) = self.check(map, off, size)?;
        write_le(&mut self.stores[m].values, start as u64, size, v)
    }

    /// Every CPU's copy of the value under `key` (one copy for plain maps),
    /// as user space reads it.
    /// The program a program array holds at `index`.
    pub fn program_at(&self, map: usize, index: u32) -> Option<usize> {
        let s = self.stores.get(map)?;
        if s.def.kind != MapKind::ProgArray || index >= s.def.max_entries {
            return None;
        }
        let v = read_le(&s.values, index as u64 * s.def.value_size as u64, 4)? as u32;
        v.checked_sub(1).map(|p| p as usize)
    }

    /// Puts program `program` (a position in `run_chain`'s list) at
    /// `index` of a program array.
    pub fn set_program(&mut self, map: usize, index: u32, program: usize) -> Option<()> {
        let s = self.stores.get_mut(map)?;
        if s.def.kind != MapKind::ProgArray || index >= s.def.max_entries {
            return None;
        }
        write_le(
            &mut s.values,
            index as u64 * s.def.value_size as u64,
            4,
            program as u64 + 1,
        )
    }

    pub fn values(&self, map: usize, key: &[u8]) -> Option<Vec<&[u8]>> {
        let def = self.def(map)?;
        let slot = self.slot_of(map, key)?;
        let vs = def.value_size as usize;
        let copies = self.copies(def) as usize;
        let base = slot as usize * copies * vs;
        let values = &self.stores[map].values;
        Some(
            (0..copies)
                .map(|c| &values[base + c * vs..base + (c + 1) * vs])
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_array_keeps_one_copy_per_cpu() {
        let def = MapDef {
            kind: MapKind::PerCpuArray,
            key_size: 4,
            value_size: 8,
            max_entries: 2,
        };
        let mut m = Maps::new(&[def], 2).unwrap();
        let key = 1u32.to_le_bytes();
        m.cpu = 1;
        let off = m.lookup(0, &key).unwrap();
        m.write(0, off, 8, 42).unwrap();
        let v = m.values(0, &key).unwrap();
        assert_eq!(v[0], &[0; 8]);
        assert_eq!(v[1], &42u64.to_le_bytes());
        assert_eq!(m.lookup(0, &2u32.to_le_bytes()), None);
        // An access that would spill into the next value is refused.
        assert_eq!(m.read(0, off + 4, 8), None);
    }

    #[test]
    fn hash_update_flags_and_delete() {
        let def = MapDef {
            kind: MapKind::Hash,
            key_size: 2,
            value_size: 4,
            max_entries: 1,
        };
        let mut m = Maps::new(&[def], 1).unwrap();
        assert_eq!(m.update(0, b"ab", &[1, 0, 0, 0], BPF_EXIST), ENOENT);
        assert_eq!(m.update(0, b"ab", &[1, 0, 0, 0], BPF_ANY), 0);
        assert_eq!(m.update(0, b"ab", &[2, 0, 0, 0], BPF_NOEXIST), EEXIST);
        assert_eq!(m.update(0, b"cd", &[2, 0, 0, 0], BPF_ANY), E2BIG);
        assert_eq!(m.values(0, b"ab").unwrap()[0], &[1, 0, 0, 0]);
        assert_eq!(m.delete(0, b"ab"), 0);
        assert_eq!(m.lookup(0, b"ab"), None);
        assert_eq!(m.update(0, b"cd", &[2, 0, 0, 0], BPF_ANY), 0);
    }

    /// The kernel's LPM trie: the longest stored prefix of the key's
    /// first `prefixlen` bits; bits past an entry's length do not count.
    #[test]
    fn lpm_trie_finds_the_longest_prefix() {
        let def = MapDef {
            kind: MapKind::LpmTrie,
            key_size: 8,
            value_size: 1,
            max_entries: 8,
        };
        let key = |len: u32, a: [u8; 4]| [len.to_le_bytes(), a].concat();
        let mut m = Maps::new(&[def], 1).unwrap();
        assert_eq!(m.update(0, &key(33, [0; 4]), &[9], BPF_ANY), EINVAL);
        assert_eq!(m.update(0, &key(0, [1, 2, 3, 4]), &[1], BPF_ANY), 0);
        assert_eq!(m.update(0, &key(8, [10, 99, 0, 0]), &[2], BPF_ANY), 0);
        assert_eq!(m.update(0, &key(24, [10, 1, 2, 77]), &[3], BPF_ANY), 0);
        assert_eq!(m.update(0, &key(32, [10, 1, 2, 3]), &[4], BPF_ANY), 0);
        let found = |m: &Maps, k: &[u8]| m.lookup(0, k).and_then(|o| m.read(0, o, 1));
        assert_eq!(found(&m, &key(32, [10, 1, 2, 3])), Some(4));
        assert_eq!(found(&m, &key(32, [10, 1, 2, 4])), Some(3));
        assert_eq!(found(&m, &key(32, [10, 9, 2, 3])), Some(2));
        assert_eq!(found(&m, &key(32, [11, 1, 2, 3])), Some(1));
        // A shorter key finds no longer prefix.
        assert_eq!(found(&m, &key(20, [10, 1, 2, 3])), Some(2));
        assert_eq!(m.delete(0, &key(24, [10, 1, 2, 0])), 0);
        assert_eq!(found(&m, &key(32, [10, 1, 2, 4])), Some(2));
        assert_eq!(m.values(0, &key(8, [10, 0, 0, 0])).unwrap()[0], &[2]);
    }

    /// A hash takes memory for the keys it holds, never for more than
    /// `max_entries`, and reuses a deleted key's slot.
    #[test]
    fn hashes_grow_up_to_max_entries() {
        let def = MapDef {
            kind: MapKind::PerCpuHash,
            key_size: 4,
            value_size: 8,
            max_entries: 3,
        };
        let mut m = Maps::new(&[def], 2).unwrap();
        assert_eq!(m.stores[0].values.len(), 0);
        for k in 0..3u32 {
            assert_eq!(m.update(0, &k.to_le_bytes(), &[7; 8], BPF_ANY), 0);
            assert_eq!(m.stores[0].values.len(), (k as usize + 1) * 16);
        }
        assert_eq!(m.update(0, &3u32.to_le_bytes(), &[7; 8], BPF_ANY), E2BIG);
        assert_eq!(m.delete(0, &1u32.to_le_bytes()), 0);
        assert_eq!(m.update(0, &3u32.to_le_bytes(), &[9; 8], BPF_ANY), 0);
        assert_eq!(m.stores[0].values.len(), 48);
        assert_eq!(
            m.values(0, &3u32.to_le_bytes()).unwrap(),
            [&[9; 8], &[0; 8]]
        );
        assert_eq!(m.update(0, &4u32.to_le_bytes(), &[7; 8], BPF_ANY), E2BIG);
        // A value pointer stays inside the entries that exist.
        let off = m.lookup(0, &3u32.to_le_bytes()).unwrap();
        assert_eq!(m.read(0, off, 8), Some(0x0909_0909_0909_0909));
        assert_eq!(m.read(0, 48, 8), None);
    }

    /// The definition an ELF object could declare to take the process
    /// down is refused before any allocation.
    #[test]
    fn huge_definitions_are_refused_before_allocation() {
        for kind in [MapKind::Array, MapKind::Hash, MapKind::PerCpuArray] {
            let def = MapDef {
                kind,
                key_size: 4,
                value_size: 0x7fff,
                max_entries: u32::MAX,
            };
            assert!(
                matches!(Maps::new(&[def], 64), Err(MapError::TooBig { .. })),
                "{kind:?}"
            );
        }
    }
}
