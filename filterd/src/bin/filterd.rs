use clap::Parser;
use filterd::cli::{run, tcpdump_args, Cli};

fn main() {
    let cli = Cli::parse_from(tcpdump_args(std::env::args_os()));
    // RUST_LOG when set, else the level of -v/-q (warnings by default).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.log_level().to_string()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(f) = run(cli, &mut std::io::stdout().lock()) {
        // Under systemd the journal files this line as an error.
        let prefix = filterd::daemon::journal::error_prefix();
        eprintln!("{prefix}filterd: {}", f.message);
        std::process::exit(f.code);
    }
}
