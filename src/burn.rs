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
    threads: Vec<JoinHandle<BurnReport>>,
}

/// What the threads did (summed over them): their schedule as they kept it, and their CPU time as the kernel
/// measured it. On a machine busy with other work the CPU time falls short of the busy time (the spin is timed
/// on the wall clock), while the schedule holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BurnReport {
    pub threads: usize,
    /// CPU time of all the threads together.
    pub cpu: Duration,
    /// Periods begun.
    pub periods: u64,
    /// Busy time the load asked for: `load × PERIOD` for each period, at the load read at its start.
    pub asked: Duration,
    /// Wall time spent spinning (at least `asked`; more when the thread was preempted mid-spin).
    pub busy: Duration,
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
        let mut total = BurnReport { threads: self.threads.len(), ..Default::default() };
        for r in self.threads.drain(..).filter_map(|h| h.join().ok()) {
            total.cpu += r.cpu;
            total.periods += r.periods;
            total.asked += r.asked;
            total.busy += r.busy;
        }
        total
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        self.join();
    }
}

/// One thread's loop; returns what it did.
fn burn(stop: &AtomicBool, load: &LoadCell) -> BurnReport {
    let mut r = BurnReport { threads: 1, ..Default::default() };
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let busy = PERIOD.mul_f64(load.get());
        while start.elapsed() < busy {
            std::hint::spin_loop();
        }
        r.periods += 1;
        r.asked += busy;
        r.busy += start.elapsed();
        next += PERIOD;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Late (the machine is busy): start the next period now rather than racing to catch up.
            next = now;
        }
    }
    r.cpu = thread_cpu_time();
    r
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

    /// Run one burner thread at `load` for about `secs`; its report and the wall time it ran.
    fn run(load: f64, secs: f64) -> (BurnReport, Duration) {
        let t = Instant::now();
        let b = Burner::start(1, Arc::new(LoadCell::new(load))).unwrap();
        std::thread::sleep(Duration::from_secs_f64(secs));
        let r = b.stop();
        (r, t.elapsed())
    }

    // The burner controls its schedule, not how much CPU the machine gives it: the assertions hold on an idle
    // machine and on one whose cores other processes take (where CPU time alone falls short of load x time).
    #[test]
    fn a_burner_at_half_load_spins_half_of_each_period_and_takes_no_more() {
        let (r, wall) = run(0.5, 1.0);
        assert_eq!(r.threads, 1);
        assert!(r.periods >= 10, "{r:?} in {wall:?}");
        // Every period asks for half of it.
        let half = PERIOD.mul_f64(0.5);
        assert_eq!(r.asked, half * r.periods as u32, "{r:?}");
        // It spins at least that long each period ...
        assert!(r.busy >= r.asked, "{r:?}");
        // ... sleeps out the rest: no period is shorter than PERIOD (it never races to catch up) ...
        assert!(PERIOD * r.periods as u32 <= wall + PERIOD, "{} periods in {wall:?}: {r:?}", r.periods);
        // ... and never uses more CPU than it asked for (a little for the loop and the sleeps aside).
        let slack = Duration::from_millis(20) + r.asked / 10;
        assert!(r.cpu <= r.asked + slack, "used {:?} of a core for {:?} asked: {r:?}", r.cpu, r.asked);
        // Over the run that is at most about half a core, whatever else runs on the machine.
        let share = r.cpu.as_secs_f64() / wall.as_secs_f64();
        assert!(share <= 0.6, "load 0.5 used {share:.2} of a core: {r:?}");
    }

    #[test]
    fn a_burner_at_no_load_never_spins() {
        let (r, wall) = run(0.0, 0.3);
        assert!(r.periods >= 3, "{r:?} in {wall:?}");
        assert_eq!(r.asked, Duration::ZERO);
        assert!(r.busy < Duration::from_millis(30) && r.cpu < Duration::from_millis(50), "{r:?}");
        assert!(PERIOD * r.periods as u32 <= wall + PERIOD, "{r:?} in {wall:?}");
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
        // Idle for 0.3 s, then busy the whole time for 0.3 s (on the wall clock: a loaded machine gives it less
        // CPU, never more).
        assert_eq!(r.threads, 1);
        assert!(r.busy > Duration::from_millis(200) && r.busy < Duration::from_millis(450), "{r:?}");
        assert!(r.asked <= r.busy, "{r:?}");
        assert!(r.cpu <= r.busy + Duration::from_millis(20), "{r:?}");
    }
}
