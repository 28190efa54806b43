#!/usr/bin/env python3
"""Writes the starting corpora (corpus/<target>/seed-*) from the shared
corpus, tcpdump's dumps and clang-built BPF objects. The fuzzer grows and
minimizes them from there; run once, before the first `./x fuzz`.
Needs ../shared beside the repository, tcpdump and clang."""

import os, struct, subprocess, tempfile, glob

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "corpus")
EXPRS = [l.strip() for l in open(os.path.join(SHARED, "expressions", "common.txt")) if l.strip()]
SOME = EXPRS[::8]


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def dump(flag, expr):
    r = subprocess.run(["tcpdump", "-y", "EN10MB", flag, expr], capture_output=True, text=True)
    if r.returncode != 0:  # tcpdump wants an interface for -y: read a capture instead
        cap = sorted(glob.glob(os.path.join(SHARED, "pcaps", "libpcap", "*.pcap")))[0]
        r = subprocess.run(["tcpdump", "-r", cap, flag, expr], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


for i, e in enumerate(EXPRS):
    put("expr_compile", f"{i}", bytes([0]) + e.encode())
    put("ruleset_toml", f"{i}", (
        '[[interface]]\nname = "eth0"\ndefault = "pass"\n'
        f'[[rule]]\nname = "r"\nmatch = "{e}"\naction = "drop"\n'
        '[[rule]]\nname = "c"\nmatch = "udp"\naction = "count"\n').encode())
put("ruleset_toml", "example", open(os.path.join(ROOT, "configs", "example.toml"), "rb").read())

for i, e in enumerate(SOME):
    for flag in ("-d", "-dd", "-ddd"):
        text = dump(flag, e)
        if text:
            put("cbpf_text", f"{i}{flag}", text.encode())
            if flag == "-ddd":
                nums = [list(map(int, l.split())) for l in text.splitlines()[1:] if l.strip()]
                raw = b"".join(struct.pack("<HBBI", c, jt, jf, k) for c, jt, jf, k in nums)
                put("cbpf_translate", f"{i}", bytes([len(nums) - 1]) + raw + bytes([0]))

for path in sorted(glob.glob(os.path.join(SHARED, "pcaps", "**", "*"), recursive=True)):
    if os.path.isfile(path) and os.path.getsize(path) <= 4096 and ".pcap" in path:
        put("capture_read", os.path.basename(path), open(path, "rb").read())

C = r"""
struct xdp_md { unsigned data, data_end, data_meta, ingress_ifindex, rx_queue_index; };
struct __sk_buff { unsigned len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci,
  vlan_proto, priority, ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid, data, data_end; };
#define SEC(n) __attribute__((section(n), used))
SEC("xdp") int xdp_prog(struct xdp_md *c) {
    unsigned char *d = (void *)(long)c->data, *e = (void *)(long)c->data_end;
    if (d + 14 > e) return 1;
    return d[12] == 8 ? 2 : 1;
}
SEC("socket") int sock_prog(struct __sk_buff *s) { return s->len > 100 ? -1 : 0; }
SEC("classifier") int tc_prog(struct __sk_buff *s) {
    unsigned char *d = (void *)(long)s->data, *e = (void *)(long)s->data_end;
    for (int i = 0; i < 4; i++) { if (d + i + 1 > e) return 0; if (d[i] == 0xff) return 2; }
    return 0;
}
char _license[] SEC("license") = "GPL";
"""
with tempfile.TemporaryDirectory() as t:
    src, obj = os.path.join(t, "p.c"), os.path.join(t, "p.o")
    open(src, "w").write(C)
    for opt in ("-O2", "-O1"):
        subprocess.run(["clang", "-target", "bpf", opt, "-g", "-c", src, "-o", obj], check=True)
        put("elf_read", f"clang{opt}", open(obj, "rb").read())

for i in range(8):
    put("ebpf_vm", f"{i}", bytes([i % 3]) + bytes((i * 37 + j * 11) % 256 for j in range(64)))
