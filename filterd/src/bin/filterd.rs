use clap::Parser;
use filterd::cli::{run, Cli};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(f) = run(cli, &mut std::io::stdout().lock()) {
        eprintln!("filterd: {}", f.message);
        std::process::exit(f.code);
    }
}
