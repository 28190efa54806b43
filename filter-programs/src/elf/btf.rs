//! Just enough BTF to describe BTF-defined maps, the form libbpf 1.x
//! (bpftool, iproute2) and aya accept:
//!
//! ```c
//! struct {
//!     int (*type)[BPF_MAP_TYPE_PERCPU_ARRAY];
//!     __u32 *key;
//!     struct counters *value;
//!     int (*max_entries)[N];
//! } name SEC(".maps");
//! ```
//!
//! ```text
//!  .BTF: header (24 bytes) | types | strings
//!  header: magic 0xeb9f u16, version 1 u8, flags 0 u8, hdr_len u32,
//!          type_off u32, type_len u32, str_off u32, str_len u32
//!  type:   name_off u32, info u32 (vlen 0-15, kind 24-28), size_or_type u32,
//!          then kind-specific words
//! ```

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;

const LINKAGE_STATIC: u32 = 0;
const LINKAGE_GLOBAL: u32 = 1;

const INT_SIGNED: u32 = 1;
const VAR_GLOBAL_ALLOCATED: u32 = 1;

/// The value of a map: named unsigned 64-bit fields, or opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueLayout {
    /// `struct NAME { __u64 f0; __u64 f1; ... }`
    U64Struct { name: String, fields: Vec<String> },
    /// `__u8 [N]`
    Bytes(u32),
    /// No key or value types, only `key_size` and `value_size`: for the map
    /// types whose values the kernel refuses to describe with BTF (program
    /// arrays), and keys that are not `__u32`.
    Opaque { key_size: u32, value_size: u32 },
}

impl ValueLayout {
    pub fn size(&self) -> u32 {
        match self {
            ValueLayout::U64Struct { fields, .. } => 8 * fields.len() as u32,
            ValueLayout::Bytes(n) | ValueLayout::Opaque { value_size: n, .. } => *n,
        }
    }
}

/// One BTF-defined map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapBtf {
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Keys are `__u32`.
    pub max_entries: u32,
    pub value: ValueLayout,
    /// `BPF_F_*` (an LPM trie needs `BPF_F_NO_PREALLOC`); 0 leaves the
    /// member out.
    pub map_flags: u32,
}

/// Size of one map definition in `.maps`: five pointers (type, key,
/// value, max_entries, map_flags), the last only named when it is set.
pub const MAP_DEF_SIZE: u32 = 40;

#[derive(Default)]
struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    count: u32,
}

impl Builder {
    fn new() -> Builder {
        // String offset 0 is the empty name.
        Builder {
            types: Vec::new(),
            strings: vec![0],
            count: 0,
        }
    }

    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn words(&mut self, words: &[u32]) -> u32 {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.count += 1;
        self.count
    }

    fn int(&mut self, name: &str, bytes: u32, signed: bool) -> u32 {
        let n = self.name(name);
        let enc = if signed { INT_SIGNED } else { 0 };
        self.words(&[n, KIND_INT << 24, bytes, (enc << 24) | (bytes * 8)])
    }

    fn ptr(&mut self, to: u32) -> u32 {
        self.words(&[0, KIND_PTR << 24, to])
    }

    fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
        self.words(&[0, KIND_ARRAY << 24, 0, elem, index, nelems])
    }

    fn structure(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let n = self.name(name);
        let mut w = vec![n, (KIND_STRUCT << 24) | members.len() as u32, size];
        for (m, ty, bit_off) in members {
            let mn = self.name(m);
            w.extend_from_slice(&[mn, *ty, *bit_off]);
        }
        self.words(&w)
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.types.len() + self.strings.len());
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1);
        out.push(0);
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(self.types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// The `.BTF` section for `maps`, laid out in `.maps` in order.
pub fn maps_btf(maps: &[MapBtf]) -> Vec<u8> {
    let mut b = Builder::new();
    add_maps(&mut b, maps);
    b.finish()
}

/// A function that `.BTF.ext` describes (the kernel wants a `FUNC` type
/// for every function of a program that has a callback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncBtf {
    pub name: String,
    /// A `bpf_loop` callback, `static int f(__u64 index, void *ctx)`;
    /// otherwise a program, `int f(void *ctx)`.
    pub callback: bool,
}

/// `.BTF` with the maps and the functions, and `.BTF.ext` with one
/// func_info record per function: `funcs[i]` lies in section
/// `sections[i].0` at byte offset `sections[i].1`.
pub fn object_btf(maps: &[MapBtf], funcs: &[(FuncBtf, &str, u32)]) -> (Vec<u8>, Vec<u8>) {
    let mut b = Builder::new();
    let int = add_maps(&mut b, maps);
    let u64_t = b.int("long long unsigned int", 8, false);
    let void_ptr = b.ptr(0);
    let (ctx, index) = (b.name("ctx"), b.name("index"));
    let prog_proto = b.words(&[0, (KIND_FUNC_PROTO << 24) | 1, int, ctx, void_ptr]);
    let cb_proto = b.words(&[
        0,
        (KIND_FUNC_PROTO << 24) | 2,
        int,
        index,
        u64_t,
        ctx,
        void_ptr,
    ]);
    // Per section, in first-seen order: its name and (offset, type) records.
    let mut sections: Vec<(String, Vec<(u32, u32)>)> = Vec::new();
    for (f, section, off) in funcs {
        let n = b.name(&f.name);
        let (linkage, proto) = if f.callback {
            (LINKAGE_STATIC, cb_proto)
        } else {
            (LINKAGE_GLOBAL, prog_proto)
        };
        let ty = b.words(&[n, (KIND_FUNC << 24) | linkage, proto]);
        match sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, recs)) => recs.push((*off, ty)),
            None => sections.push((section.to_string(), vec![(*off, ty)])),
        }
    }
    let mut info = 8u32.to_le_bytes().to_vec(); // rec_size
    for (section, recs) in &sections {
        info.extend_from_slice(&b.name(section).to_le_bytes());
        info.extend_from_slice(&(recs.len() as u32).to_le_bytes());
        for (off, ty) in recs {
            info.extend_from_slice(&off.to_le_bytes());
            info.extend_from_slice(&ty.to_le_bytes());
        }
    }
    // header: magic, version 1, flags 0, hdr_len 24, func_info off/len,
    // line_info off/len (none)
    let mut ext = Vec::with_capacity(24 + info.len());
    ext.extend_from_slice(&0xeb9fu16.to_le_bytes());
    ext.extend_from_slice(&[1, 0]);
    for w in [24, 0, info.len() as u32, info.len() as u32, 0] {
        ext.extend_from_slice(&w.to_le_bytes());
    }
    ext.extend_from_slice(&info);
    (b.finish(), ext)
}

/// The maps' types and variables, and their `.maps` DATASEC; returns the
/// id of `int`.
fn add_maps(b: &mut Builder, maps: &[MapBtf]) -> u32 {
    let int = b.int("int", 4, true);
    let u32_t = b.int("unsigned int", 4, false);
    let u64_t = b.int("long long unsigned int", 8, false);
    let u8_t = b.int("unsigned char", 1, false);
    let mut vars = Vec::new();
    for m in maps {
        let ty_arr = b.array(int, int, m.map_type);
        let ty_ptr = b.ptr(ty_arr);
        let (key_field, key_ptr, value_field, value_ptr) = match &m.value {
            ValueLayout::Opaque {
                key_size,
                value_size,
            } => {
                let k = b.array(int, int, *key_size);
                let kp = b.ptr(k);
                let v = b.array(int, int, *value_size);
                ("key_size", kp, "value_size", b.ptr(v))
            }
            layout => {
                let kp = b.ptr(u32_t);
                let value = match layout {
                    ValueLayout::U64Struct { name, fields } => {
                        let members: Vec<(&str, u32, u32)> = fields
                            .iter()
                            .enumerate()
                            .map(|(i, f)| (f.as_str(), u64_t, 64 * i as u32))
                            .collect();
                        b.structure(name, m.value.size(), &members)
                    }
                    _ => b.array(u8_t, int, m.value.size()),
                };
                ("key", kp, "value", b.ptr(value))
            }
        };
        let max_arr = b.array(int, int, m.max_entries);
        let max_ptr = b.ptr(max_arr);
        let mut members = vec![
            ("type", ty_ptr, 0),
            (key_field, key_ptr, 64),
            (value_field, value_ptr, 128),
            ("max_entries", max_ptr, 192),
        ];
        if m.map_flags != 0 {
            let flags_arr = b.array(int, int, m.map_flags);
            members.push(("map_flags", b.ptr(flags_arr), 256));
        }
        let def = b.structure("", MAP_DEF_SIZE, &members);
        let vn = b.name(&m.name);
        vars.push(b.words(&[vn, KIND_VAR << 24, def, VAR_GLOBAL_ALLOCATED]));
    }
    if !maps.is_empty() {
        let n = b.name(".maps");
        let mut w = vec![
            n,
            (KIND_DATASEC << 24) | vars.len() as u32,
            MAP_DEF_SIZE * vars.len() as u32,
        ];
        for (i, v) in vars.iter().enumerate() {
            w.extend_from_slice(&[*v, MAP_DEF_SIZE * i as u32, MAP_DEF_SIZE]);
        }
        b.words(&w);
    }
    int
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_first_type_are_exact() {
        let btf = maps_btf(&[]);
        assert_eq!(&btf[..8], &[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]);
        // type 1: "int", INT, 4 bytes, signed, 32 bits
        assert_eq!(
            &btf[24..40],
            &[1, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 32, 0, 0, 1]
        );
        let type_len = u32::from_le_bytes(btf[12..16].try_into().unwrap()) as usize;
        let strings = &btf[24 + type_len..];
        assert_eq!(&strings[..5], b"\0int\0");
    }

    #[test]
    fn one_map_ends_with_its_datasec() {
        let m = MapBtf {
            name: "counters".into(),
            map_type: 6,
            max_entries: 3,
            value: ValueLayout::U64Struct {
                name: "counter".into(),
                fields: vec!["packets".into(), "bytes".into()],
            },
            map_flags: 0,
        };
        let btf = maps_btf(&[m]);
        let type_len = u32::from_le_bytes(btf[12..16].try_into().unwrap()) as usize;
        // DATASEC: 3 words + 1 entry of 3 words, last in the type section.
        let ds = &btf[24 + type_len - 24..24 + type_len];
        let info = u32::from_le_bytes(ds[4..8].try_into().unwrap());
        assert_eq!(info, (KIND_DATASEC << 24) | 1);
        assert_eq!(
            u32::from_le_bytes(ds[8..12].try_into().unwrap()),
            MAP_DEF_SIZE
        );
    }
}
