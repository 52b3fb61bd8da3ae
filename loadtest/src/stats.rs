//! What a run records: HDR histograms of latency (overall, reads, writes) over the measured
//! window, and a per-second timeline (ops, errors, latency) over the whole run, warm-up
//! included, for the plot.
//!
//! Latencies are recorded in microseconds, from just before a request is issued to just
//! after its reply is seen. The load is closed-loop (each task waits for its reply before
//! the next request), so these are service latencies at the offered concurrency, not
//! latencies at a fixed arrival rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Highest latency tracked exactly (60 s); slower replies are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // Fixed, valid bounds (1 µs .. 60 s, sigfig <= 5): creation cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig).expect("constant histogram bounds")
}

/// Kind of a measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `get_data`.
    Read,
    /// `set_data`.
    Write,
    /// `create`.
    Create,
}

/// One second of the run.
pub struct Second {
    /// Operations completed successfully in this second.
    pub ops: u64,
    /// Operations that failed in this second.
    pub errors: u64,
    /// Their latencies (2 significant figures: enough for a plot).
    pub latency: Histogram<u64>,
}

struct Inner {
    all: Histogram<u64>,
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    measured_ops: u64,
    measured_errors: u64,
    errors_by_kind: BTreeMap<String, u64>,
    timeline: Vec<Second>,
}

/// Shared recorder for every task of a run.
pub struct Stats {
    start: Instant,
    measure_from: Instant,
    measure_until: Instant,
    inner: Mutex<Inner>,
}

impl Stats {
    /// A recorder for a run that starts now, measures from `warmup` on for `duration`.
    pub fn new(warmup: Duration, duration: Duration) -> Stats {
        let start = Instant::now();
        let seconds = (warmup + duration).as_secs() as usize + 2;
        Stats {
            start,
            measure_from: start + warmup,
            measure_until: start + warmup + duration,
            inner: Mutex::new(Inner {
                all: histogram(3),
                reads: histogram(3),
                writes: histogram(3),
                measured_ops: 0,
                measured_errors: 0,
                errors_by_kind: BTreeMap::new(),
                timeline: (0..seconds)
                    .map(|_| Second {
                        ops: 0,
                        errors: 0,
                        latency: histogram(2),
                    })
                    .collect(),
            }),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When the measured window ends (no new request should start after it).
    pub fn end(&self) -> Instant {
        self.measure_until
    }

    fn second(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.start).as_secs() as usize
    }

    fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.measure_until
    }

    /// Records a successful op that finished at `done` after `latency`.
    pub fn ok(&self, kind: OpKind, latency: Duration, done: Instant) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let sec = self.second(done);
        let measured = self.measured(done);
        let mut g = self.inner.lock();
        if let Some(s) = g.timeline.get_mut(sec) {
            s.ops += 1;
            s.latency.saturating_record(us);
        }
        if measured {
            g.measured_ops += 1;
            g.all.saturating_record(us);
            match kind {
                OpKind::Read => g.reads.saturating_record(us),
                OpKind::Write | OpKind::Create => g.writes.saturating_record(us),
            }
        }
    }

    /// Records a failed op that finished at `done`.
    pub fn error(&self, what: &str, done: Instant) {
        let sec = self.second(done);
        let measured = self.measured(done);
        let mut g = self.inner.lock();
        if let Some(s) = g.timeline.get_mut(sec) {
            s.errors += 1;
        }
        if measured {
            g.measured_errors += 1;
            if g.errors_by_kind.len() < 32 || g.errors_by_kind.contains_key(what) {
                *g.errors_by_kind.entry(what.to_string()).or_default() += 1;
            }
        }
    }

    /// Finishes the run: the summary over the measured window and the timeline.
    pub fn finish(self, duration: Duration) -> (Summary, Vec<Second>) {
        let g = self.inner.into_inner();
        let secs = duration.as_secs_f64().max(1e-9);
        let summary = Summary {
            ops: g.measured_ops,
            errors: g.measured_errors,
            ops_per_sec: g.measured_ops as f64 / secs,
            all: Percentiles::of(&g.all),
            reads: Percentiles::of(&g.reads),
            writes: Percentiles::of(&g.writes),
            errors_by_kind: g.errors_by_kind,
        };
        (summary, g.timeline)
    }
}

/// Latency percentiles in milliseconds (all zero when nothing was recorded).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    /// Operations in the histogram.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Percentiles {
    /// Percentiles of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// The result of the measured window.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Successful operations.
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Every operation.
    pub all: Percentiles,
    /// Reads only.
    pub reads: Percentiles,
    /// Writes (set or create) only.
    pub writes: Percentiles,
    /// Failed operations by error name (at most 32 names).
    pub errors_by_kind: BTreeMap<String, u64>,
}
