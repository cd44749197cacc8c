//! The `kafka-webhook-sidecar` binary: parse flags, load and validate the config (exit 64 on a
//! bad one, before any port is bound), then run until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kafka_webhook_sidecar::config::{Config, Settings};
use kafka_webhook_sidecar::delivery::HttpClient;
use kafka_webhook_sidecar::lifecycle::{Exit, Signals};
use kafka_webhook_sidecar::{app, ops::logging, EXIT_CONFIG, EXIT_FORCED};

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
    // The endpoint's TLS and token files are read here too, so `--check-config` reports an
    // unreadable CA file or a key that does not match its certificate.
    let loaded = Settings::load(&args.config).and_then(|settings| {
        HttpClient::check(&settings.delivery.endpoint)?;
        Ok(settings)
    });
    let settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    if args.check_config {
        println!("config {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    logging::init(&settings.log);
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
    let result = runtime.block_on(async {
        let (signals, listener) = Signals::install().map_err(app::Error::Signals)?;
        let admin = app::bind_admin(&settings).await?;
        let run = app::run(settings, admin, signals.clone().nth(1));
        // A second signal cuts the shutdown short; nothing unacknowledged was ever stored.
        let exit = tokio::select! {
            result = run => result,
            _ = signals.nth(2) => Ok(Exit::SecondSignal),
        };
        listener.abort();
        exit
    });
    // Don't wait for tasks still holding the runtime (a commit blocked on an unreachable
    // broker): the shutdown deadline already passed or everything finished.
    runtime.shutdown_background();
    match result {
        Ok(Exit::Clean) => ExitCode::SUCCESS,
        Ok(Exit::DeadlineExceeded | Exit::SecondSignal) => ExitCode::from(EXIT_FORCED as u8),
        Err(error) => {
            tracing::error!(%error, "Fatal error");
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
