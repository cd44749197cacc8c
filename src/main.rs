//! The `kafka-webhook-sidecar` binary: parse flags, load and validate the config (exit 64 on a
//! bad one, before any port is bound), then run until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kafka_webhook_sidecar::{app, config::Config, logging, signals, EXIT_CONFIG, EXIT_FORCED};

/// mimalloc instead of glibc malloc for Rust's allocations: records, requests and tasks are
/// allocated on one thread and freed on another, where glibc's arena locks showed up in the
/// profile (bench/README.md has the figures).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Delivers Kafka records to an HTTP endpoint, committing only after acknowledgement.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Path of the YAML config file.
    #[arg(
        long,
        short,
        env = "KWS_CONFIG",
        default_value = "/etc/kafka-webhook-sidecar/config.yaml"
    )]
    config: PathBuf,
    /// Validate the config and exit (0 if valid, 64 if not) without connecting anywhere.
    #[arg(long)]
    check_config: bool,
    /// Print the JSON Schema of the config file and exit.
    #[arg(long)]
    print_config_schema: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_config_schema {
        print!("{}", Config::json_schema());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    if args.check_config {
        println!("config {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    logging::init(&config.log);
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("A rustls crypto provider was already installed");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(app::run(config, signals::shutdown_signal()));
    // Tasks still holding the runtime must not delay the exit past the deadline.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(app::Exit::Clean) => ExitCode::SUCCESS,
        Ok(app::Exit::DeadlineExceeded) => ExitCode::from(EXIT_FORCED as u8),
        Err(error) => {
            tracing::error!(%error, "Fatal error");
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
