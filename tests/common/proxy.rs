//! A TCP proxy on 127.0.0.1:0 in front of an upstream address that resets (RST, via
//! `SO_LINGER` 0) every open connection at random intervals, like a load balancer or NAT that
//! drops connections under the client's feet.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct ResettingProxy {
    addr: SocketAddr,
    resets: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl ResettingProxy {
    /// Proxies to `upstream`; every `min..max` (uniformly random) all open connections are reset.
    pub async fn start(upstream: SocketAddr, min: Duration, max: Duration) -> ResettingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let resets = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let (generation_tx, generation_rx) = watch::channel(0u64);

        let ticker = tokio::spawn(async move {
            let mut generation = 0u64;
            loop {
                let wait = rand::thread_rng().gen_range(min..=max);
                tokio::time::sleep(wait).await;
                generation += 1;
                if generation_tx.send(generation).is_err() {
                    return;
                }
            }
        });

        let counted = resets.clone();
        let accepted = connections.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let mut generation = generation_rx.clone();
                generation.mark_unchanged();
                let counted = counted.clone();
                // SO_LINGER 0 is deprecated in tokio because a non-zero linger blocks the thread
                // on drop; a zero linger does not block: it sends RST at once, which is the point.
                #[allow(deprecated)]
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        let _ = client.set_linger(Some(Duration::ZERO));
                        return;
                    };
                    let mut client = client;
                    let mut server = server;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = generation.changed() => {
                            counted.fetch_add(1, Ordering::Relaxed);
                            // Dropped with linger 0: the kernel sends RST on both sides.
                            let _ = client.set_linger(Some(Duration::ZERO));
                            let _ = server.set_linger(Some(Duration::ZERO));
                        }
                    }
                });
            }
        });
        ResettingProxy {
            addr,
            resets,
            connections,
            tasks: vec![ticker, acceptor],
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Connections reset so far.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for ResettingProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
