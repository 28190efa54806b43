#!/usr/bin/env bash
# pcap-replay's cbpf engine alone against `tcpdump -r F -w /dev/null EXPR`,
# side by side on the same large capture, for a few expressions.
#
#   pcap-replay/benches/vs_tcpdump.sh [PACKETS]      (default 4000000)
#   SMALL=1 pcap-replay/benches/vs_tcpdump.sh [PACKETS]
#
# The capture repeats the packets of tests/data/*.pcap (Ethernet: TCP,
# IPv6/ICMPv6, VLAN, OSPF), so the mix is real traffic and most packets are
# small: per-packet cost dominates, not I/O. RUNS rounds (default 3) each
# run all three commands, in a rotating order; the table gives each side's
# best time and, as "paired", the median over rounds of tcpdump's time over
# ours within a round, which a burst of other work on the machine moves far
# less than it moves a best-of time. The file is read once first so
# both sides read from the page cache. pcap-replay runs with
# `--engines cbpf --quiet`: reading, our interpreter, and the verdict
# count; tcpdump reads, runs libpcap's interpreter and writes the matching
# packets to /dev/null. Both filter with the program their own compiler
# makes of EXPR (ours with -e; the `--cbpf` column runs tcpdump's own
# program, from `tcpdump -ddd`, in our interpreter).
#
# With SMALL=1 the capture is small_frames.py's (every frame 60 to 200
# bytes: IPv4/IPv6, VLAN, tunnels, fragments, runts; issue 19's shape), and
# the expressions those of issue 19.
#
# Env: PCAP_REPLAY (binary; default: cargo build --release), RUNS, WORKDIR,
# SMALL.
set -euo pipefail
cd "$(dirname "$0")/../.."
packets=${1:-4000000}
runs=${RUNS:-3}
work=${WORKDIR:-$(mktemp -d)}
trap '[ -z "${WORKDIR:-}" ] && rm -rf "$work"' EXIT

if [ -z "${PCAP_REPLAY:-}" ]; then
  cargo build --release -q -p pcap-replay --bins
  PCAP_REPLAY=${CARGO_TARGET_DIR:-target}/release/pcap-replay
fi
command -v tcpdump >/dev/null || { echo "tcpdump is missing" >&2; exit 2; }

capture=$work/bench.pcap
if [ -n "${SMALL:-}" ]; then
  python3 pcap-replay/benches/small_frames.py "$capture" "$packets"
else
python3 - "$capture" "$packets" tests/data/print-flags.pcap tests/data/icmpv6.pcap tests/data/ldp-common-session.pcap <<'EOF'
import struct, sys
out, total, inputs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
recs = []
for path in inputs:
    b = open(path, 'rb').read()
    assert b[:4] == b'\xd4\xc3\xb2\xa1', path  # little-endian microsecond pcap
    off = 24
    while off + 16 <= len(b):
        caplen = struct.unpack('<I', b[off + 8:off + 12])[0]
        recs.append(b[off + 8:off + 16 + caplen])  # lengths and data; time set below
        off += 16 + caplen
with open(out, 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
    buf = []
    for i in range(total):
        buf.append(struct.pack('<II', 1_700_000_000 + i // 1_000_000, i % 1_000_000) + recs[i % len(recs)])
        if len(buf) == 100_000:
            f.write(b''.join(buf)); buf = []
    f.write(b''.join(buf))
EOF
fi
bytes=$(stat -c %s "$capture")
cat "$capture" > /dev/null

# Wall time of one run of the command, in ns.
once() {
  local start end
  start=$(date +%s%N)
  "$@" > /dev/null 2>&1 || [ $? -eq 1 ]
  end=$(date +%s%N)
  echo $((end - start))
}

# The smallest of a space-separated list of ns, in seconds.
best() {
  awk -v a="$1" 'BEGIN { n = split(a, x, " "); m = x[1]; for (i = 2; i <= n; i++) if (x[i] < m) m = x[i]; printf "%.3f", m / 1e9 }'
}

# The median over i of a[i] / b[i] (two space-separated lists, same length).
paired() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= n; i++) r[i] = x[i] / y[i];
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
    printf "%.2f", (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
  }'
}

echo "capture: $packets packets, $bytes bytes; $runs rounds; $(nproc) CPUs; $(tcpdump --version 2>&1 | head -1)"
echo
echo "| expression | matches | tcpdump s | pcap-replay -e s | ratio | paired | pcap-replay --cbpf s | ratio | paired |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
exprs=('tcp port 80' 'ip6' 'vlan and tcp' 'host 192.168.0.1 and tcp' 'tcp[tcpflags] & tcp-syn != 0')
if [ -n "${SMALL:-}" ]; then
  exprs=('tcp port 80' 'host 10.0.0.1' 'vlan 100' 'tcp port 80 or udp port 53 or ip6')
fi
for expr in "${exprs[@]}"; do
  matches=$("$PCAP_REPLAY" --engines cbpf --count -e "$expr" "$capture")
  tcpdump -ddd -r "$capture" "$expr" > "$work/prog.ddd" 2>/dev/null
  dump=() ours=() cbpf=()
  # Each round runs all three, in an order that rotates, so that a burst of
  # other work on the machine lands on every side alike.
  for round in $(seq "$runs"); do
    for k in 0 1 2; do
      case $(((round + k) % 3)) in
        0) dump+=("$(once tcpdump -r "$capture" -w /dev/null "$expr")") ;;
        1) ours+=("$(once "$PCAP_REPLAY" --engines cbpf --quiet -e "$expr" "$capture")") ;;
        2) cbpf+=("$(once "$PCAP_REPLAY" --engines cbpf --quiet --cbpf "$work/prog.ddd" "$capture")") ;;
      esac
    done
  done
  t_dump=$(best "${dump[*]}") t_ours=$(best "${ours[*]}") t_cbpf=$(best "${cbpf[*]}")
  # Paired: per round, tcpdump's time over ours.
  p_ours=$(paired "${dump[*]}" "${ours[*]}") p_cbpf=$(paired "${dump[*]}" "${cbpf[*]}")
  awk -v e="$expr" -v m="$matches" -v d="$t_dump" -v o="$t_ours" -v c="$t_cbpf" -v po="$p_ours" -v pc="$p_cbpf" \
    'BEGIN { printf "| `%s` | %d | %.3f | %.3f | %.2fx | %.2fx | %.3f | %.2fx | %.2fx |\n", e, m, d, o, d / o, po, c, d / c, pc }'
done
echo
echo "ratio: tcpdump's best time / pcap-replay's best time (its throughput over tcpdump's); paired:"
echo "the median over rounds of the same ratio within one round; goal >= 1.5x"
