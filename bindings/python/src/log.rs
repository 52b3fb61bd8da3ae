//! The library's `tracing` output, handed to Python's `logging` (logger `coord.<module>`)
//! on the callback thread, so an I/O thread never waits for the GIL.

use pyo3::prelude::*;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The most verbose level forwarded: 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(2);

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Sets which records are forwarded, from a Python `logging` level (10 DEBUG ... 50
/// CRITICAL); `coord` calls it with the effective level of the `coord` logger.
#[pyfunction]
pub fn set_log_level(level: i32) {
    let max = match level {
        l if l <= 5 => 5,
        l if l <= 10 => 4,
        l if l <= 20 => 3,
        l if l <= 30 => 2,
        l if l <= 50 => 1,
        _ => 0,
    };
    MAX_LEVEL.store(max, Ordering::Relaxed);
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

struct ToLogging;

impl<S: Subscriber> Layer<S> for ToLogging {
    // The level can change at run time (`set_log_level`): never let tracing cache a
    // callsite's first answer.
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        rank(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            Level::DEBUG | Level::TRACE => 10,
        };
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let name = format!("coord.{}", meta.target().replace("::", "."));
        let text = msg.0;
        crate::post(Box::new(move |py| {
            let run = || -> PyResult<()> {
                let logger = py.import("logging")?.call_method1("getLogger", (name,))?;
                logger.call_method1("log", (level, text))?;
                Ok(())
            };
            let _ = run();
        }));
    }
}

/// Installs the forwarding layer as the process's global subscriber, unless the embedding
/// program installed one already.
pub fn install() {
    let subscriber = tracing_subscriber::registry().with(ToLogging);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
