//! The `sprat` binary: parses the command line, loads `server.properties`, and runs the broker
//! until SIGINT or SIGTERM.

use clap::Parser;
use log::{debug, error, info};
use sprat::broker::Broker;
use sprat::config::BrokerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// A single-node, Kafka-compatible message broker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Path to a Kafka `server.properties` file. Without it, Kafka's defaults apply.
    config: Option<PathBuf>,
    /// Overrides one property, as `key=value` (repeatable), like Kafka's `--override`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    install_panic_hook();
    let args = Args::parse();
    let config = match BrokerConfig::load(args.config.as_deref(), &args.overrides) {
        Ok(c) => c,
        Err(e) => {
            error!("invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (key, value) in &config.unknown {
        if sprat::security::is_sensitive_key(key) {
            debug!("ignoring unused property {key} (value hidden)");
        } else {
            debug!("ignoring unused property {key}={value}");
        }
    }
    let broker = match Broker::start(config) {
        Ok(b) => b,
        Err(e) => {
            error!("could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!(
        "sprat {} started on {}",
        env!("CARGO_PKG_VERSION"),
        broker.local_addr()
    );
    sprat::broker::wait_for_shutdown_signal();
    let mut broker = broker;
    broker.shutdown();
    ExitCode::SUCCESS
}

/// Logs every panic with its thread. A panic in a connection thread is a bug that costs only that
/// connection; a panic in the log-writer thread leaves no one to write the logs, so the broker
/// stops at once rather than stay half alive (what was acknowledged is already in the files).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        error!("thread {name} panicked: {info}");
        if name == "log-writer" {
            error!("the log writer failed; stopping the broker");
            std::process::exit(70);
        }
    }));
}
