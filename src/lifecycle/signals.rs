//! SIGTERM / SIGINT, counted: the first starts the graceful shutdown, a second cuts it short.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

/// The count of shutdown signals received so far.
#[derive(Clone)]
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Installs the handlers and a task that counts signals; the caller owns the task.
    pub fn install() -> std::io::Result<(Signals, JoinHandle<()>)> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (sender, count) = watch::channel(0u32);
        let listener = tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = terminate.recv() => "SIGTERM",
                    Some(()) = interrupt.recv() => "SIGINT",
                    else => return,
                };
                let received = *sender.borrow() + 1;
                match received {
                    1 => info!(signal = name, "Shutdown requested"),
                    _ => error!(signal = name, "Second signal: exiting immediately"),
                }
                if sender.send(received).is_err() {
                    return;
                }
            }
        });
        Ok((Signals { count }, listener))
    }

    /// Completes once `n` signals have arrived (never, if the handlers are gone).
    pub async fn nth(mut self, n: u32) {
        if self.count.wait_for(|count| *count >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
