//! The load test's report: counts, answers by status, transport errors, throughput and the
//! latency distribution, as text for people and as JSON for scripts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// What a load test ran, as its report names it.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub method: String,
    pub url: String,
    pub concurrency: usize,
    pub rate: Option<f64>,
}

/// Latencies are recorded in microseconds up to an hour, to three significant digits.
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// One connection's tallies, merged into the report at the end.
pub(super) struct ConnectionStats {
    pub sent: u64,
    pub unfinished: u64,
    /// Answers by status code (index = code).
    pub statuses: Vec<u64>,
    pub transport_errors: u64,
    pub error_kinds: HashMap<String, u64>,
    /// From the intended start to the end of the answer, µs.
    pub latency: Histogram<u64>,
    /// Open loop: from the moment the request was sent to the end of the answer, µs.
    pub service_time: Option<Histogram<u64>>,
    pub trace: Vec<RequestRecord>,
}

pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// Why the load test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// Every request of `--requests` was answered (or failed).
    Requests,
    /// `--duration` was over.
    Duration,
    /// Ctrl-C.
    Interrupted,
}

/// One request, kept when the configuration asks for a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRecord {
    /// The request's number, in the order of intended starts.
    pub slot: u64,
    /// When it was meant to start, from the start of the test.
    pub intended: Duration,
    /// From the intended start to the end of the answer (or of the failure).
    pub latency: Duration,
    /// The answer's status; `None` for a transport error.
    pub status: Option<u16>,
}

/// Everything a load test measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub method: String,
    /// The URL with the path.
    pub url: String,
    pub concurrency: usize,
    /// Open loop: the target rate.
    pub rate: Option<f64>,
    pub stopped_by: StopReason,
    /// When the first request could start.
    pub started: Instant,
    /// From `started` to the end of the last request.
    pub elapsed: Duration,
    /// Requests started (answered, failed or unfinished).
    pub sent: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer: connection refused or reset, timeout, bad response.
    pub transport_errors: u64,
    pub transport_error_kinds: BTreeMap<String, u64>,
    /// Requests in flight when the test stopped: not counted as answers or errors.
    pub unfinished: u64,
    /// Open loop: requests due before the end that never found a free connection.
    pub missed: u64,
    /// Every answer's latency in µs, from its intended start (open loop) or from when it
    /// was sent (closed loop, where the two are the same).
    pub latency: Histogram<u64>,
    /// Open loop: every answer's time from being sent to its end, µs.
    pub service_time: Option<Histogram<u64>>,
    /// One record per request, in no particular order (when asked for).
    pub trace: Vec<RequestRecord>,
}

impl Report {
    pub(super) fn merge(
        config: Run,
        stopped_by: StopReason,
        started: Instant,
        elapsed: Duration,
        missed: u64,
        per_connection: Vec<ConnectionStats>,
    ) -> Self {
        let mut report = Self {
            method: config.method,
            url: config.url,
            concurrency: config.concurrency,
            rate: config.rate,
            stopped_by,
            started,
            elapsed,
            sent: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            transport_error_kinds: BTreeMap::new(),
            unfinished: 0,
            missed,
            latency: histogram(),
            service_time: config.rate.map(|_| histogram()),
            trace: Vec::new(),
        };
        for c in per_connection {
            report.sent += c.sent;
            report.unfinished += c.unfinished;
            report.transport_errors += c.transport_errors;
            for (code, &n) in c.statuses.iter().enumerate() {
                if n > 0 {
                    *report.statuses.entry(code as u16).or_default() += n;
                }
            }
            for (kind, n) in c.error_kinds {
                *report.transport_error_kinds.entry(kind).or_default() += n;
            }
            report.latency.add(&c.latency).expect("same bounds");
            if let (Some(total), Some(part)) = (&mut report.service_time, &c.service_time) {
                total.add(part).expect("same bounds");
            }
            report.trace.extend(c.trace);
        }
        report
    }

    /// Requests that got an answer, whatever its status.
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers outside 2xx.
    pub fn error_answers(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| !(200..300).contains(*code))
            .map(|(_, n)| n)
            .sum()
    }

    /// Error answers plus transport errors.
    pub fn errors(&self) -> u64 {
        self.error_answers() + self.transport_errors
    }

    /// Errors among the requests that completed (answered or failed); `None` when none did.
    pub fn error_rate(&self) -> Option<f64> {
        let completed = self.answered() + self.transport_errors;
        (completed > 0).then(|| self.errors() as f64 / completed as f64)
    }

    /// Answers per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.answered() as f64 / secs
        } else {
            0.0
        }
    }

    /// Fails when no request completed, or when more of them failed than allowed.
    pub fn check(&self, max_error_rate: f64) -> anyhow::Result<()> {
        let Some(rate) = self.error_rate() else {
            anyhow::bail!("no request completed: nothing was measured");
        };
        if rate > max_error_rate {
            anyhow::bail!(
                "{} of {} requests failed ({:.3} %), above --max-error-rate {} %",
                self.errors(),
                self.answered() + self.transport_errors,
                rate * 100.0,
                max_error_rate * 100.0
            );
        }
        Ok(())
    }

    /// The machine-readable report.
    pub fn summary(&self) -> Summary {
        Summary {
            method: self.method.clone(),
            url: self.url.clone(),
            mode: if self.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            concurrency: self.concurrency,
            rate: self.rate,
            stopped_by: self.stopped_by,
            elapsed_s: self.elapsed.as_secs_f64(),
            sent: self.sent,
            answered: self.answered(),
            statuses: self
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            transport_errors: self.transport_errors,
            transport_error_kinds: self.transport_error_kinds.clone(),
            unfinished: self.unfinished,
            missed: self.missed,
            errors: self.errors(),
            error_rate: self.error_rate(),
            throughput_rps: self.throughput(),
            latency_us: Percentiles::of(&self.latency),
            service_time_us: self.service_time.as_ref().and_then(Percentiles::of),
        }
    }
}

/// The report as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub method: String,
    pub url: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub stopped_by: StopReason,
    pub elapsed_s: f64,
    pub sent: u64,
    pub answered: u64,
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub transport_error_kinds: BTreeMap<String, u64>,
    pub unfinished: u64,
    pub missed: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub throughput_rps: f64,
    pub latency_us: Option<Percentiles>,
    pub service_time_us: Option<Percentiles>,
}

/// Points of a latency distribution, µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    pub max: u64,
}

impl Percentiles {
    /// `None` for an empty histogram.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// `850 µs`, `12.3 ms`, `1.20 s`.
pub fn format_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{:.2} ms", us as f64 / 1e3),
        10_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

fn write_percentiles(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    p: Option<Percentiles>,
) -> fmt::Result {
    match p {
        None => writeln!(f, "{name:<14}no answers"),
        Some(p) => writeln!(
            f,
            "{name:<14}p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            format_us(p.p50),
            format_us(p.p90),
            format_us(p.p99),
            format_us(p.p99_9),
            format_us(p.max)
        ),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.rate {
            Some(rate) => format!(
                "open loop at {rate} req/s over {} connections",
                self.concurrency
            ),
            None => format!("closed loop, {} connections", self.concurrency),
        };
        let stopped = match self.stopped_by {
            StopReason::Requests => "all requests done",
            StopReason::Duration => "duration over",
            StopReason::Interrupted => "interrupted",
        };
        writeln!(f, "{} {}: {mode}", self.method, self.url)?;
        writeln!(
            f,
            "{:<14}{:.2} s ({stopped})",
            "elapsed",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:<14}{} sent, {} answered, {} transport errors, {} unfinished at the end",
            "requests",
            self.sent,
            self.answered(),
            self.transport_errors,
            self.unfinished
        )?;
        if self.rate.is_some() && self.missed > 0 {
            writeln!(
                f,
                "{:<14}{} requests were due but never sent: every connection was busy (the target rate was not reached)",
                "missed", self.missed
            )?;
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(
            f,
            "{:<14}{}",
            "answers",
            if statuses.is_empty() {
                "none".to_string()
            } else {
                statuses.join(", ")
            }
        )?;
        for (kind, n) in &self.transport_error_kinds {
            writeln!(f, "{:<14}{n} × {kind}", "  transport")?;
        }
        writeln!(f, "{:<14}{:.1} answers/s", "throughput", self.throughput())?;
        write_percentiles(f, "latency", Percentiles::of(&self.latency))?;
        if let Some(service) = &self.service_time {
            write_percentiles(f, "service time", Percentiles::of(service))?;
            writeln!(
                f,
                "{:<14}latency counts from each request's intended start; service time from when it was sent",
                ""
            )?;
        }
        match self.error_rate() {
            Some(rate) => writeln!(
                f,
                "{:<14}{} ({:.3} %)",
                "errors",
                self.errors(),
                rate * 100.0
            ),
            None => writeln!(f, "{:<14}no request completed", "errors"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format_us;

    #[test]
    fn formats_latencies() {
        assert_eq!(format_us(850), "850 µs");
        assert_eq!(format_us(1_234), "1.23 ms");
        assert_eq!(format_us(12_345), "12.3 ms");
        assert_eq!(format_us(1_200_000), "1.20 s");
    }
}
