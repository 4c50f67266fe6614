//! A CPU burner that stands in for baseband processing: threads that keep a core busy for the share of time
//! given by a node's current radio load, so jobs on the same machine feel the radio as a real BBU's would.
//!
//! Each thread works in 10 ms periods: it spins for `load × 10 ms`, then sleeps to the end of the period. The
//! load is read at the start of every period from a [`LoadCell`] the radio loop updates. The threads are plain
//! OS threads (never the async executor's) and stop within one period of [`Burner::stop`] or a drop.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The duty-cycle period.
pub const PERIOD: Duration = Duration::from_millis(10);

/// A load in 0..1 shared between the radio loop (writer) and the burner threads (readers).
#[derive(Debug, Default)]
pub struct LoadCell(AtomicU64);

impl LoadCell {
    pub fn new(load: f64) -> Self {
        let c = Self::default();
        c.set(load);
        c
    }
    /// Set the load (clamped to 0..1; NaN counts as 0).
    pub fn set(&self, load: f64) {
        let v = if load.is_nan() { 0.0 } else { load.clamp(0.0, 1.0) };
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Running burner threads; dropping it stops them.
#[derive(Debug)]
pub struct Burner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Duration>>,
}

/// What the threads did, measured by the kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnReport {
    pub threads: usize,
    /// CPU time of all the threads together.
    pub cpu: Duration,
}

impl Burner {
    /// Start `threads` threads following `load`.
    pub fn start(threads: usize, load: Arc<LoadCell>) -> std::io::Result<Burner> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut b = Burner { stop: stop.clone(), threads: Vec::with_capacity(threads) };
        for i in 0..threads {
            let (stop, load) = (stop.clone(), load.clone());
            let h = std::thread::Builder::new().name(format!("burn-{i}")).spawn(move || burn(&stop, &load))?;
            b.threads.push(h);
        }
        Ok(b)
    }

    /// Stop the threads, wait for them and report their CPU time.
    pub fn stop(mut self) -> BurnReport {
        self.join()
    }

    fn join(&mut self) -> BurnReport {
        self.stop.store(true, Ordering::Relaxed);
        let threads = self.threads.len();
        let cpu = self.threads.drain(..).filter_map(|h| h.join().ok()).sum();
        BurnReport { threads, cpu }
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        self.join();
    }
}

/// One thread's loop; returns the thread's CPU time.
fn burn(stop: &AtomicBool, load: &LoadCell) -> Duration {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let busy = PERIOD.mul_f64(load.get());
        while start.elapsed() < busy {
            std::hint::spin_loop();
        }
        next += PERIOD;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Late (the machine is busy): start the next period now rather than racing to catch up.
            next = now;
        }
    }
    thread_cpu_time()
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Share of one core a burner at `load` uses over about a second.
    fn share(load: f64) -> f64 {
        let cell = Arc::new(LoadCell::new(load));
        let t = Instant::now();
        let b = Burner::start(1, cell).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        let r = b.stop();
        r.cpu.as_secs_f64() / t.elapsed().as_secs_f64()
    }

    #[test]
    fn a_burner_at_half_load_uses_about_half_a_core() {
        // Loose bounds: the machine is shared and noisy.
        let s = share(0.5);
        assert!((0.3..0.7).contains(&s), "load 0.5 used {s:.2} of a core");
    }

    #[test]
    fn a_burner_follows_its_load_and_stops() {
        let cell = Arc::new(LoadCell::new(0.0));
        let b = Burner::start(1, cell.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        cell.set(2.0); // clamped to 1
        assert_eq!(cell.get(), 1.0);
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let r = b.stop();
        assert!(t.elapsed() < Duration::from_millis(200), "stopped in {:?}", t.elapsed());
        // Idle for 0.3 s, then a full core for 0.3 s.
        assert_eq!(r.threads, 1);
        assert!(r.cpu > Duration::from_millis(100) && r.cpu < Duration::from_millis(450), "used {:?}", r.cpu);
    }
}
