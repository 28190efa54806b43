//! pcap-replay: run filter programs over captures in several engines and
//! prove, packet by packet, that their verdicts agree.

pub mod libpcap;
