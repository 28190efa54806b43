//! pcap-replay's tool features end to end: `-w` read back by tcpdump and
//! tshark, `--count`, `--ebpf` objects (ours and clang's), the default
//! engine list with what it leaves out, the mismatch report on a real
//! disagreement, and parallel captures keeping their order.
//!
//! Build the binaries first: `cargo build -p pcap-replay -p filterd --bins`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> String {
    e2e::repo_root()
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

fn corpus_pcap(name: &str) -> String {
    e2e::corpus_dir()
        .join("pcaps/tcpdump")
        .join(name)
        .display()
        .to_string()
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pcap-replay-features-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(bin: &str, args: &[&str]) -> Output {
    let out = Command::new(e2e::bin(bin))
        .args(args)
        .output()
        .expect("runs");
    eprintln!(
        "{bin} {}\n--- stderr:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Packets `tool -r FILE [EXPR]` prints, one line each.
fn count_lines(tool: &str, file: &str, expr: Option<&str>) -> usize {
    let mut cmd = Command::new(tool);
    cmd.arg("-r").arg(file);
    if tool == "tcpdump" {
        cmd.arg("-n");
    }
    if let Some(e) = expr {
        cmd.arg(e);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{tool} is installed: {e}"));
    assert!(
        out.status.success(),
        "{tool} -r {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn write_matches_as_tcpdump_would_and_tcpdump_and_tshark_read_it() {
    let dir = scratch("write");
    let cases = [
        (corpus_pcap("ipv6-routing-header.pcap"), "ip6"),
        (data("ldp-common-session.pcap"), "vlan and tcp"),
        (
            data("OSPFv2_Capture_FINAL.pcapng"),
            "ip proto \\ospf and ip[8] = 1",
        ),
        (data("print-flags.pcap"), "tcp[tcpflags] & tcp-syn != 0"),
        (data("icmpv6.pcap"), "udp"),
    ];
    for (i, (input, expr)) in cases.iter().enumerate() {
        let out_path = dir.join(format!("{i}.pcap"));
        let out_s = out_path.to_str().unwrap();
        let out = run("pcap-replay", &["-e", expr, "-w", out_s, "--json", input]);
        assert_eq!(out.status.code(), Some(0), "{expr}");
        let want = count_lines("tcpdump", input, Some(expr));
        let report = json(&out);
        assert_eq!(
            report["results"][0]["engines"]["libpcap"]["matched"], want as u64,
            "{expr}"
        );
        assert_eq!(
            count_lines("tcpdump", out_s, None),
            want,
            "tcpdump -r {out_s} ({expr})"
        );
        assert_eq!(
            count_lines("tshark", out_s, None),
            want,
            "tshark -r {out_s} ({expr})"
        );
        if input.ends_with(".pcap") {
            // From a pcap, byte for byte what tcpdump -w writes.
            let reference = dir.join(format!("{i}.ref.pcap"));
            let st = Command::new("tcpdump")
                .args(["-r", input, "-w"])
                .arg(&reference)
                .arg(expr)
                .output()
                .unwrap();
            assert!(st.status.success());
            assert_eq!(
                std::fs::read(&reference).unwrap(),
                std::fs::read(&out_path).unwrap(),
                "{expr} on {input}"
            );
        }
    }
    // One program and one capture only.
    let out = run(
        "pcap-replay",
        &[
            "-e",
            "ip",
            "-w",
            "/dev/null",
            &data("icmpv6.pcap"),
            &data("print-flags.pcap"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-w takes one program and one capture"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn count_prints_only_the_number() {
    let out = run(
        "pcap-replay",
        &["-e", "tcp", "--count", &data("print-flags.pcap")],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "10\n");
    let out = run(
        "pcap-replay",
        &[
            "-e",
            "udp",
            "-e",
            "tcp",
            "--count",
            &data("icmpv6.pcap"),
            &data("print-flags.pcap"),
        ],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{}\n0\n0\n10\n",
            count_lines("tcpdump", &data("icmpv6.pcap"), Some("udp"))
        )
    );
}

/// Writes `filterd compile --target T -o DIR/T.o EXPR` and returns the path.
fn filterd_object(dir: &Path, target: &str, expr: &str) -> String {
    let path = dir.join(format!("{target}.o"));
    let out = run(
        "filterd",
        &[
            "compile",
            "--target",
            target,
            "-o",
            path.to_str().unwrap(),
            expr,
        ],
    );
    assert!(out.status.success(), "filterd compile --target {target}");
    path.display().to_string()
}

#[test]
fn ebpf_objects_run_in_the_vm_and_the_kernel_of_their_hook() {
    let dir = scratch("ebpf");
    let kernel = e2e::kernel_available("ebpf_objects_run_in_the_vm_and_the_kernel_of_their_hook");
    let capture = data("print-flags.pcap");
    let want = count_lines("tcpdump", &capture, Some("tcp port 80")) as u64;
    for (target, hook) in [("xdp", "xdp"), ("tc", "tc"), ("socket", "socket")] {
        let obj = filterd_object(&dir, target, "tcp port 80");
        let out = run("pcap-replay", &["--ebpf", &obj, "--json", &capture]);
        assert_eq!(out.status.code(), Some(0), "{target}");
        let r = &json(&out)["results"][0];
        let vm = format!("ebpf-{hook}");
        assert_eq!(r["engines"][&vm]["matched"], want, "{target}");
        let left: Vec<(String, String)> = r["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["engine"].as_str().unwrap().into(),
                    l["reason"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            left.contains(&("cbpf".into(), "no classic program".into())),
            "{left:?}"
        );
        assert!(
            left.contains(&("libpcap".into(), "no classic program".into())),
            "{left:?}"
        );
        if kernel {
            let k = &r["engines"][format!("kernel-{hook}")];
            let seen = k["matched"].as_u64().unwrap()
                + k.get("skipped").and_then(Value::as_u64).unwrap_or(0);
            assert!(
                seen >= want && k["matched"].as_u64().unwrap() <= want,
                "{target}: {k}"
            );
        }
        // The table says it in words.
        let table =
            String::from_utf8(run("pcap-replay", &["--ebpf", &obj, &capture]).stdout).unwrap();
        assert!(
            table.contains("  left out: cbpf: no classic program\n"),
            "{table}"
        );
    }

    // clang's object with two programs: --section picks one.
    let src = dir.join("two.c");
    std::fs::write(
        &src,
        r#"
struct xdp_md { unsigned int data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
#define SEC(n) __attribute__((section(n), used))
static int is_ipv6(struct xdp_md *ctx) {
    unsigned char *p = (unsigned char *)(long)ctx->data, *end = (unsigned char *)(long)ctx->data_end;
    return p + 14 <= end && p[12] == 0x86 && p[13] == 0xdd;
}
SEC("xdp") int pass_ipv6(struct xdp_md *ctx) { return is_ipv6(ctx) ? 2 : 1; }
SEC("xdp/other") int pass_other(struct xdp_md *ctx) { return is_ipv6(ctx) ? 1 : 2; }
char _license[] SEC("license") = "GPL";
"#,
    )
    .unwrap();
    let obj = dir.join("two.o");
    let st = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status();
    assert!(st.expect("clang is installed").success());
    let obj = obj.to_str().unwrap();
    let v6 = data("icmpv6.pcap");
    let out = run("pcap-replay", &["--ebpf", obj, &v6]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("several program sections (xdp, xdp/other)")
    );
    let want = count_lines("tcpdump", &v6, Some("ip6")) as u64;
    let total = count_lines("tcpdump", &v6, None) as u64;
    for (section, matched) in [("xdp", want), ("xdp/other", total - want)] {
        let out = run(
            "pcap-replay",
            &["--ebpf", obj, "--section", section, "--json", &v6],
        );
        assert_eq!(out.status.code(), Some(0), "{section}");
        let r = &json(&out)["results"][0];
        assert_eq!(r["program"], format!("{obj}:{section}"));
        assert_eq!(r["engines"]["ebpf-xdp"]["matched"], matched, "{section}");
        if kernel {
            assert_eq!(r["engines"]["kernel-xdp"]["matched"], matched, "{section}");
        }
    }
    let out = run("pcap-replay", &["--ebpf", obj, "--section", "nosuch", &v6]);
    assert_eq!(out.status.code(), Some(2));
    let out = run("pcap-replay", &["--ebpf", &capture, &v6]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a BPF object"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ldh [12]; jeq #0x800; ld #proto; jeq #0x800; ret #96; ret #0`: the
/// ancillary load means `skb->protocol` only to the kernel (and so to the
/// socket and tc translations); to libpcap it is a load past the packet.
const KERNEL_ONLY: &str =
    "6\n40 0 0 12\n21 0 3 2048\n32 0 0 4294963200\n21 0 1 2048\n6 0 0 96\n6 0 0 0\n";

#[test]
fn mismatch_report_explains_a_real_disagreement() {
    let dir = scratch("mismatch");
    let prog = dir.join("proto.ddd");
    std::fs::write(&prog, KERNEL_ONLY).unwrap();
    let prog = prog.to_str().unwrap();
    let capture = data("print-flags.pcap");
    let args = [
        "--cbpf",
        prog,
        "--engines",
        "cbpf,libpcap,ebpf-socket",
        "--max-mismatches",
        "3",
        "--trace",
        &capture,
    ];
    let out = run("pcap-replay", &args);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    let needles = [
        &format!("  mismatch: {capture} packet 0 (byte 24): cbpf=0 libpcap=0 ebpf-socket=96\n") as &str,
        "    time 1120622255.938066000  caplen 74  wire 74\n",
        "    match: ebpf-socket  no match: cbpf libpcap\n",
        "    Ethernet 00:00:00:00:00:00 > 00:00:00:00:00:00, IPv4 127.0.0.1 > 127.0.0.1 ttl 64 len 60, TCP 55920 > 80 [S]\n",
        "    0000  00 00 00 00 00 00 00 00 00 00 00 00 08 00 45 00\n",
        &format!("{}^^ ^^\n", " ".repeat(46)),
        "    loads: 2@12, 4@4294963200 (past the capture)\n",
        "      (000) ldh      [12]",
        "      (002) ld       [proto]",
        "      returns 0\n",
        "... and 7 more (see --verdicts, --max-mismatches)",
        "engines DISAGREE on 10 packets",
    ];
    for n in needles {
        assert!(table.contains(n), "{n:?} not in:\n{table}");
    }
    assert_eq!(
        table.matches("  mismatch: ").count(),
        4,
        "3 explained, then the rest counted"
    );
    // The JSON carries the same details, as added fields.
    let out = run(
        "pcap-replay",
        &[&args[..args.len() - 2], &["--json", &capture]].concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    let r = &json(&out)["results"][0];
    let details = r["mismatch_details"].as_array().unwrap();
    assert_eq!(details.len(), 3);
    assert_eq!(
        details[0]["loads"][0],
        serde_json::json!({"offset": 12, "size": 2})
    );
    assert_eq!(details[0]["ret"]["ebpf-socket"], 96);
    assert_eq!(details[0]["match"]["libpcap"], false);
    assert_eq!(details[1]["index"], 1);
    assert_eq!(r["mismatches"], 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_engines_are_all_that_can_run_and_the_rest_are_named() {
    let dir = scratch("default");
    let prog = dir.join("proto.ddd");
    std::fs::write(&prog, KERNEL_ONLY).unwrap();
    let out = run(
        "pcap-replay",
        &[
            "--cbpf",
            prog.to_str().unwrap(),
            "--json",
            &data("icmpv6.pcap"),
        ],
    );
    let r = &json(&out)["results"][0];
    let ran: Vec<&str> = r["engines"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let left: Vec<&str> = r["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["engine"].as_str().unwrap())
        .collect();
    // XDP has no skb->protocol: both XDP engines are left out, with why.
    assert!(left.contains(&"ebpf-xdp"), "{left:?}");
    assert!(
        r["left_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("xdp hook"),
        "{r}"
    );
    // Nor does the trace hook read skb->protocol (yet).
    assert!(left.contains(&"ebpf-trace"), "{left:?}");
    for e in ["cbpf", "libpcap", "ebpf-socket", "ebpf-tc"] {
        assert!(ran.contains(&e), "{e} runs: {ran:?}");
    }
    if e2e::kernel_available("default_engines_are_all_that_can_run_and_the_rest_are_named") {
        assert!(
            ran.contains(&"kernel-socket") && ran.contains(&"kernel-tc"),
            "{ran:?}"
        );
        // Without privileges the kernel engines are left out, not errors.
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(e2e::bin("pcap-replay"))
            .args(["-e", "tcp", "--json", &data("print-flags.pcap")])
            .output()
            .expect("setpriv (util-linux) runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = &json(&out)["results"][0];
        assert_eq!(r["engines"].as_object().unwrap().len(), 6, "{r}");
        let left: Vec<&str> = r["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["engine"].as_str().unwrap())
            .collect();
        assert_eq!(left, ["kernel-socket", "kernel-xdp", "kernel-tc"]);
        assert!(r["left_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("bpf()"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parallel_captures_keep_the_command_line_order() {
    let dir = scratch("order");
    let verdicts = dir.join("v.ndjson");
    let mut files = Vec::new();
    for name in [
        "print-flags.pcap",
        "icmpv6.pcap",
        "ldp-common-session.pcap",
        "OSPFv2_Capture_FINAL.pcapng",
    ] {
        files.push(data(name));
    }
    for name in [
        "dhcp-rfc4388.pcap",
        "ipv6-routing-header.pcap",
        "mpls-over-udp.pcap",
    ] {
        files.push(corpus_pcap(name));
    }
    let files: Vec<String> = files.iter().chain(files.iter().rev()).cloned().collect();
    let mut args = vec![
        "-e",
        "ip or ip6",
        "-e",
        "tcp",
        "--engines",
        "cbpf,libpcap",
        "--json",
        "--verdicts",
    ];
    args.push(verdicts.to_str().unwrap());
    args.extend(files.iter().map(String::as_str));
    let out = run("pcap-replay", &args);
    assert_eq!(out.status.code(), Some(0));
    let results = json(&out)["results"].as_array().unwrap().clone();
    let order: Vec<(&str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["expression"].as_str().unwrap(),
                r["file"].as_str().unwrap(),
            )
        })
        .collect();
    let want: Vec<(&str, &str)> = ["ip or ip6", "tcp"]
        .iter()
        .flat_map(|e| files.iter().map(move |f| (*e, f.as_str())))
        .collect();
    assert_eq!(order, want);
    // Verdict lines: each result's packets in order, results in order.
    let text = std::fs::read_to_string(&verdicts).unwrap();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    for r in &results {
        for i in 0..r["packets"].as_u64().unwrap() {
            let l = lines.next().expect("a line per packet");
            assert_eq!(
                (&l["file"], &l["expression"], l["index"].as_u64()),
                (&r["file"], &r["expression"], Some(i))
            );
        }
    }
    assert!(lines.next().is_none());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no part files left behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
