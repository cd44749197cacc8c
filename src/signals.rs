//! SIGTERM / SIGINT: the first starts the graceful shutdown, a second exits at once.

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

/// Completes on the first SIGTERM or SIGINT, and arms the second-signal exit.
pub async fn shutdown_signal() {
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("Cannot install signal handlers; shutdown only by kill");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => info!(signal = "SIGTERM", "Shutdown requested"),
        _ = interrupt.recv() => info!(signal = "SIGINT", "Shutdown requested"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        // Nothing unacknowledged was ever stored, so exiting now commits nothing wrong.
        error!("Second signal: exiting immediately");
        std::process::exit(crate::EXIT_FORCED);
    });
}
