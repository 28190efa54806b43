//! What the Kubernetes DaemonSet (configs/kubernetes/) relies on:
//! - the manifests hold together, read offline (PyYAML): the DaemonSet's
//!   probes, ports, mounts, capabilities and ConfigMap agree with each other
//!   and with the config inside, the Service and ServiceMonitor find the
//!   pods, and the Containerfile ships the static binary the DaemonSet runs;
//! - the ConfigMap's config passes `filterd check` on a node with its
//!   interface (a namespace whose veth is named eth0);
//! - a ConfigMap update, made exactly as the kubelet makes it (a new
//!   timestamped directory, a `..data_tmp` symlink renamed over `..data`),
//!   reloads the daemon once, and an invalid update keeps the program;
//! - `/healthz`, the probes' endpoint, is 200 while the program is attached
//!   and 503 once it is not.

mod daemon_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon_support::*;
use e2e::net::Netns;
use serde_json::Value;

fn kube_dir() -> PathBuf {
    e2e::repo_root().join("configs/kubernetes")
}

/// Every document of every manifest, by file name.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kube_dir())
        .expect("configs/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let script = "import sys, json, yaml\n\
        print(json.dumps([[f, d] for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None]))";
    // Debian's Python, where `./x test` installs python3-yaml.
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .args(&files)
        .output()
        .expect("python3 (./x test installs python3-yaml)");
    assert!(
        out.status.success(),
        "reading the manifests: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<(String, Value)> = serde_json::from_slice(&out.stdout).expect("JSON");
    docs.into_iter()
        .map(|(f, d)| {
            let name = Path::new(&f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, d)
        })
        .collect()
}

fn one<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The ConfigMap's filterd.toml.
fn configmap_config(docs: &[(String, Value)]) -> String {
    one(docs, "ConfigMap")["data"]["filterd.toml"]
        .as_str()
        .expect("the ConfigMap holds filterd.toml")
        .to_string()
}

#[test]
fn kubernetes_manifests_hold_together() {
    let docs = manifests();
    // Every object is named, of a known kind, in filterd's namespace.
    for (file, d) in &docs {
        let kind = d["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no kind"));
        assert!(d["apiVersion"].is_string(), "{file}: no apiVersion");
        assert!(
            d["metadata"]["name"].is_string() || kind == "Kustomization",
            "{file}: no name"
        );
        if !["Namespace", "Kustomization"].contains(&kind) {
            assert_eq!(d["metadata"]["namespace"], "filterd", "{file} {kind}");
        }
    }
    assert_eq!(one(&docs, "Namespace")["metadata"]["name"], "filterd");
    // kustomization.yaml lists every other manifest.
    let listed: BTreeSet<String> = strs(&one(&docs, "Kustomization")["resources"])
        .into_iter()
        .collect();
    let files: BTreeSet<String> = docs
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files, "kustomization resources");

    let ds = one(&docs, "DaemonSet");
    assert_eq!(ds["apiVersion"], "apps/v1");
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in ds["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&labels[k], v, "the selector selects the pods");
    }
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "XDP on the node's interfaces");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    // Least capabilities: all dropped, then only what filterd needs.
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    let added: BTreeSet<String> = strs(&sc["capabilities"]["add"]).into_iter().collect();
    assert_eq!(
        added,
        ["BPF", "NET_ADMIN", "PERFMON"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    // Mounts name volumes; the config is the ConfigMap's directory (a
    // subPath would never see an update); bpffs and the state directory
    // are the host's.
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    let mount_of = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
    };
    for m in mounts {
        volume(m["name"].as_str().expect("mount name"));
        assert!(
            m.get("subPath").is_none(),
            "subPath mounts do not update: {m}"
        );
    }
    let config_mount = mount_of("/etc/filterd");
    let cm = one(&docs, "ConfigMap");
    assert_eq!(
        volume(config_mount["name"].as_str().unwrap())["configMap"]["name"],
        cm["metadata"]["name"]
    );
    let bpffs = mount_of("/sys/fs/bpf");
    assert_eq!(
        volume(bpffs["name"].as_str().unwrap())["hostPath"]["path"],
        "/sys/fs/bpf"
    );
    let state = mount_of("/run/filterd");
    assert_eq!(
        volume(state["name"].as_str().unwrap())["hostPath"]["path"],
        "/run/filterd"
    );
    // The daemon runs the mounted config, and parses these arguments.
    let args = strs(&c["args"]);
    assert_eq!(
        args.last().map(String::as_str),
        Some("/etc/filterd/filterd.toml")
    );
    let mut argv = vec!["filterd".to_string()];
    argv.extend(args.iter().cloned());
    let parsed = <filterd::cli::Cli as clap::Parser>::try_parse_from(&argv);
    assert!(parsed.is_ok(), "{argv:?}: {:?}", parsed.err());
    // The config inside: its metrics endpoint is the container's port,
    // reachable at the node's address, and its pins are on the host's bpffs.
    let config: toml::Value = toml::from_str(&configmap_config(&docs)).expect("TOML");
    let metrics = config["daemon"]["metrics"].as_str().expect("metrics");
    let port: u16 = metrics.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        metrics.starts_with("0.0.0.0:"),
        "probes come from the node: {metrics}"
    );
    assert!(config["daemon"]["pin"]
        .as_str()
        .unwrap()
        .starts_with("/sys/fs/bpf/"));
    let ports = c["ports"].as_array().expect("ports");
    let metrics_port = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a metrics port");
    assert_eq!(metrics_port["containerPort"], port);
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert_eq!(get["port"], "metrics", "{probe}");
    }
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    // The Service selects the pods, the ServiceMonitor the Service's port.
    let svc = one(&docs, "Service");
    for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&labels[k], v, "the Service selects the pods");
    }
    assert!(svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "metrics" && p["targetPort"] == "metrics"));
    let sm = one(&docs, "ServiceMonitor");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "the ServiceMonitor finds the Service"
        );
    }
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    // The image: a static binary in an empty image, run as the DaemonSet
    // expects (its args are filterd's).
    let recipe = std::fs::read_to_string(e2e::repo_root().join("configs/Containerfile")).unwrap();
    let stages: Vec<&str> = recipe.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.last(), Some(&"FROM scratch"), "{stages:?}");
    assert!(recipe.contains("--target x86_64-unknown-linux-musl -p filterd"));
    assert!(recipe.contains("COPY --from=build /filterd /usr/local/bin/filterd"));
    assert!(recipe.contains("ENTRYPOINT [\"/usr/local/bin/filterd\"]"));
    let image = c["image"].as_str().unwrap();
    assert!(
        recipe.contains(&format!("-t {image}")),
        "the recipe builds {image}"
    );
}

/// The ConfigMap's config is valid on a node that has its interface.
#[test]
fn the_configmap_config_checks_on_a_node() {
    if !e2e::kernel_available("configmap_config_checks") {
        return;
    }
    let docs = manifests();
    let ns = Netns::with_veth("k8scheck");
    ns.ip(&["link", "set", "v1", "name", "eth0"]);
    let dirs = Dirs::new("k8scheck");
    let path = dirs.work.join("filterd.toml");
    std::fs::write(&path, configmap_config(&docs)).unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(e2e::bin("filterd"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A ConfigMap volume's layout, updated as the kubelet's atomic writer
/// updates it.
struct ConfigMapVolume {
    dir: PathBuf,
    generation: usize,
}

impl ConfigMapVolume {
    /// `filterd.toml -> ..data/filterd.toml`, `..data -> ..<timestamp>`.
    fn new(dir: &Path, text: &str) -> ConfigMapVolume {
        let mut v = ConfigMapVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.update(text);
        std::os::unix::fs::symlink("..data/filterd.toml", dir.join("filterd.toml")).unwrap();
        v
    }

    /// A new timestamped directory with the file, a `..data_tmp` symlink
    /// to it renamed over `..data`, the old directory removed.
    fn update(&mut self, text: &str) {
        self.generation += 1;
        let name = format!(
            "..2026_12_07_10_00_{:02}.{:09}",
            self.generation, self.generation
        );
        let new = self.dir.join(&name);
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("filterd.toml"), text).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        let data = self.dir.join("..data");
        let old = std::fs::read_link(&data).ok();
        std::fs::rename(&tmp, &data).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

fn wait_for(ns: &Netns, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Some(m) = scrape(ns).filter(|m| pred(m)) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: never happened:\n{:?}", scrape(ns));
}

#[test]
fn a_configmap_update_reloads_once_and_a_bad_one_keeps_the_program() {
    if !e2e::kernel_available("configmap_update") {
        return;
    }
    let ns = Netns::with_veth("k8scm");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("k8scm");
    let first = config_text(&dirs, "skb", "pass", &[("web", "tcp port 80", "drop")]);
    let mut volume = ConfigMapVolume::new(&dirs.work, &first);
    assert_eq!(dirs.config(), dirs.work.join("filterd.toml"));
    let daemon = Daemon::start(&ns, &dirs, &[]);
    let running = xdp_prog_id(&ns).expect("attached");
    let rule = |m: &str, name: &str| m.contains(&format!("rule=\"{name}\""));
    assert!(rule(&scrape(&ns).unwrap(), "web"));

    let second = config_text(
        &dirs,
        "skb",
        "pass",
        &[
            ("web", "tcp port 80", "drop"),
            ("dns", "udp port 53", "count"),
        ],
    );
    volume.update(&second);
    let m = wait_for(&ns, "the reload of the update", |m| {
        metric(m, "filterd_reloads_total", "") == Some(1)
    });
    assert!(rule(&m, "dns"), "{m}");
    let swapped = xdp_prog_id(&ns).expect("attached");
    assert_ne!(swapped, running, "a new program");
    // Once: the rename is one change, whatever the watcher saw of it.
    std::thread::sleep(Duration::from_millis(1500));
    let m = scrape(&ns).unwrap();
    assert_eq!(metric(&m, "filterd_reloads_total", ""), Some(1), "{m}");
    assert_eq!(
        metric(&m, "filterd_reload_failures_total", ""),
        Some(0),
        "{m}"
    );

    // A half-written config (cut in the middle of a rule): refused, and
    // the program stays.
    let third = config_text(
        &dirs,
        "skb",
        "pass",
        &[
            ("web", "tcp port 80", "drop"),
            ("ntp", "udp port 123", "drop"),
        ],
    );
    let cut = &third[..third.find("udp port").unwrap() + 5];
    volume.update(cut);
    let m = wait_for(&ns, "the refusal of the cut update", |m| {
        metric(m, "filterd_reload_failures_total", "").is_some_and(|n| n >= 1)
    });
    assert_eq!(metric(&m, "filterd_reload_last_success", ""), Some(0));
    assert_eq!(metric(&m, "filterd_reloads_total", ""), Some(1));
    assert!(rule(&m, "dns") && !rule(&m, "ntp"), "{m}");
    assert_eq!(xdp_prog_id(&ns), Some(swapped), "the running program stays");

    // And the whole update after it is taken.
    volume.update(&third);
    let m = wait_for(&ns, "the reload after the refusal", |m| {
        metric(m, "filterd_reloads_total", "") == Some(2)
    });
    assert!(rule(&m, "ntp"), "{m}");
    assert!(daemon.stop().success());
}

#[test]
fn healthz_follows_the_attached_program() {
    if !e2e::kernel_available("healthz") {
        return;
    }
    let ns = Netns::with_veth("k8shz");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("k8shz");
    std::fs::write(
        dirs.config(),
        config_text(&dirs, "skb", "pass", &[("web", "tcp port 80", "drop")]),
    )
    .unwrap();
    let daemon = Daemon::start(&ns, &dirs, &[]);
    let id = xdp_prog_id(&ns).expect("attached");
    let (status, body) = http_get(&ns, "/healthz").expect("healthz");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, format!("ok v1: program {id} (skb)\n"));
    // Someone detaches the program (through its pinned link).
    let link = bpf_kernel::obj::get(&dirs.pin.join("v1/link")).expect("pinned link");
    bpf_kernel::link::detach(std::os::fd::AsFd::as_fd(&link)).expect("detach");
    assert_eq!(xdp_prog_id(&ns), None);
    let (status, body) = http_get(&ns, "/healthz").expect("healthz");
    assert!(status.contains("503"), "{status}");
    assert_eq!(body, format!("down v1: program {id} is not attached\n"));
    // The daemon still stops cleanly.
    let stopped = daemon.stop();
    assert!(stopped.code().is_some(), "{stopped:?}");
}

/// The binary the Containerfile ships (`./x test` builds it as the recipe
/// does): statically linked (no program interpreter), it compiles and
/// checks in an empty root, as in `FROM scratch`, what the workspace's
/// filterd compiles.
#[test]
fn the_containerfile_binary_runs_in_an_empty_root() {
    if !e2e::kernel_available("containerfile_binary") {
        return;
    }
    let target = e2e::bin("filterd")
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join("x86_64-unknown-linux-musl/release/filterd");
    let elf = std::fs::read(&target)
        .unwrap_or_else(|e| panic!("{}: {e} (./x test builds it)", target.display()));
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    });
    assert!(
        !interp,
        "the Containerfile's filterd asks for a dynamic loader"
    );
    // An empty root: the binary alone.
    let root = std::env::temp_dir().join(format!("filterd-scratch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&target, root.join("filterd")).unwrap();
    let args = [
        "compile",
        "--target",
        "xdp",
        "--format",
        "asm",
        "tcp port 80 and not src net 10.0.0.0/8",
    ];
    let scratch = Command::new("chroot")
        .arg(&root)
        .arg("/filterd")
        .args(args)
        .output()
        .expect("chroot");
    let here = Command::new(e2e::bin("filterd"))
        .args(args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        scratch.status.success(),
        "in an empty root: {}",
        String::from_utf8_lossy(&scratch.stderr)
    );
    assert_eq!(scratch.stdout, here.stdout);
}
