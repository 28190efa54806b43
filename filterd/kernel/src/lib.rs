//! bpf-kernel: the one typed layer between this workspace and the kernel's
//! raw interfaces, so that `unsafe` and hand-laid-out structs live in one
//! crate that both applications share.
//!
//! aya loads and attaches ELF objects in filterd; what it does not offer
//! (a bare instruction array through the verifier with its log, test runs
//! on any program fd, link calls on links it did not create, rtnetlink
//! dumps, taking another process's socket, the socket-filter options) is
//! here, each call a safe function returning a typed result or an
//! `io::Error` that keeps the errno. pcap-replay's kernel engines use it
//! without depending on filterd.
//!
//! - [`prog`]: `BPF_PROG_LOAD` (with the verifier log), `BPF_PROG_TEST_RUN`,
//!   `BPF_PROG_GET_FD_BY_ID`;
//! - [`obj`]: `BPF_OBJ_PIN`, `BPF_OBJ_GET`;
//! - [`link`]: `bpf_link_info`, `BPF_LINK_UPDATE`, `BPF_LINK_DETACH`;
//! - [`map`]: finding this process's own map descriptors;
//! - [`socket`]: `SO_ATTACH_FILTER`, `SO_ATTACH_BPF`, `SO_DETACH_FILTER`;
//! - [`netlink`]: the rtnetlink dumps and requests aya does not expose;
//! - [`pidfd`]: `pidfd_open` and `pidfd_getfd`;
//! - [`iface`]: interface names and indexes.
//!
//! Every `bpf(2)` call goes through one private wrapper in `attr`, which
//! also holds the `#[repr(C)]` argument struct of each command.

mod attr;
pub mod iface;
pub mod link;
pub mod map;
pub mod netlink;
pub mod obj;
pub mod pidfd;
pub mod prog;
pub mod socket;

pub use prog::{load, loops, test_run, LoadError, Loaded, TestRun};
