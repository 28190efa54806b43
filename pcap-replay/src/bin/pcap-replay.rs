fn main() {
    println!("pcap-replay: not yet");
}
