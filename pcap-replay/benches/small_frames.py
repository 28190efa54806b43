#!/usr/bin/env python3
"""A pcap of small Ethernet frames for vs_tcpdump.sh (SMALL=1), issue 19's shape.

    small_frames.py OUT.pcap PACKETS

Every frame is 60 to 200 bytes: IPv4 and IPv6 TCP and UDP, 802.1Q-tagged
IPv4 (VLANs 100 to 103), IP-in-IP and GRE tunnels, IPv4 fragments, and
60-byte TCP runts. Addresses in 10.0.0.0/24 and 2001:db8::/32, ports from a
small set, so that every expression of the bench matches some. 4,096
distinct frames (fixed seed), repeated.
"""
import random
import struct
import sys

out, total = sys.argv[1], int(sys.argv[2])
rng = random.Random(19)
ETH = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2])
PORTS = [22, 53, 80, 443, 8080, 12345]


def ip4(proto, payload, frag=0):
    src = bytes([10, 0, 0, rng.randrange(1, 5)])
    dst = bytes([10, 0, 0, rng.randrange(1, 5)])
    return struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0,
                       src, dst) + payload


def ip6(nh, payload):
    a = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [rng.randrange(1, 5)])
    return struct.pack('>IHBB', 0x60000000, len(payload), nh, 64) + a + a[::-1] + payload


def l4(proto, size):
    sp, dp = rng.choice(PORTS), rng.choice(PORTS)
    if proto == 6:
        h = struct.pack('>HHIIBBHHH', sp, dp, 0, 0, 0x50, rng.choice([2, 16, 24]), 0, 0, 0)
    else:
        h = struct.pack('>HHHH', sp, dp, 8 + size, 0)
    return h + bytes(size)


def frame():
    kind = rng.randrange(8)
    pad = rng.randrange(0, 120)
    if kind in (0, 1):
        proto = 6 if kind == 0 else 17
        f = ETH + b'\x08\x00' + ip4(proto, l4(proto, pad))
    elif kind == 2:
        f = ETH + b'\x86\xdd' + ip6(6, l4(6, pad))
    elif kind == 3:
        f = ETH + b'\x86\xdd' + ip6(17, l4(17, pad))
    elif kind == 4:
        tag = struct.pack('>H', 100 + rng.randrange(4))
        f = ETH + b'\x81\x00' + tag + b'\x08\x00' + ip4(6, l4(6, pad))
    elif kind == 5:
        inner = ip4(17, l4(17, pad // 2))
        outer = ip4(4, inner) if rng.randrange(2) else ip4(47, b'\x00\x00\x08\x00' + inner)
        f = ETH + b'\x08\x00' + outer
    elif kind == 6:
        f = ETH + b'\x08\x00' + ip4(17, bytes(8 + pad), frag=rng.choice([0x2000, 0x0010, 0x2020]))
    else:
        f = (ETH + b'\x08\x00' + ip4(6, l4(6, 0)))[:60]
    f = f[:200]
    return f + bytes(max(0, 60 - len(f)))


frames = [frame() for _ in range(4096)]
with open(out, 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
    buf = []
    for i in range(total):
        d = frames[i % len(frames)]
        buf.append(struct.pack('<IIII', 1_700_000_000 + i // 1_000_000, i % 1_000_000,
                               len(d), len(d)) + d)
        if len(buf) == 100_000:
            f.write(b''.join(buf))
            buf = []
    f.write(b''.join(buf))
