//! The resident memory of a sidecar process, from `/proc/PID/status`: one reading, and a
//! sampler thread that keeps the peak while a test runs.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `VmRSS` and `VmHWM` (peak) of a process in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples a process's RSS every 100 ms on its own thread; [`finish`](Self::finish) returns
/// the largest of the samples and of the kernel's high-water mark.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<usize>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let (flag, peak) = (stop.clone(), peak_kib.clone());
        let thread = std::thread::spawn(move || {
            let mut samples = 0;
            while !flag.load(Ordering::SeqCst) {
                if let Some((rss, hwm)) = rss_kib(pid) {
                    peak.fetch_max(rss.max(hwm), Ordering::SeqCst);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        RssSampler {
            stop,
            peak_kib,
            thread,
        }
    }

    /// The peak so far in MiB, without stopping.
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib.load(Ordering::SeqCst) as f64 / 1024.0
    }

    /// Stops sampling: the peak in MiB and the number of samples taken.
    pub fn finish(self) -> (f64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.thread.join().expect("sampler thread");
        (
            self.peak_kib.load(Ordering::SeqCst) as f64 / 1024.0,
            samples,
        )
    }
}
