//! Measurement and output: per-operation HdrHistograms of latency (in
//! microseconds) and error counts, the once-a-second progress line, and the
//! end-of-run table, JSON, `.hgrm` percentile files and SVG plot.
//!
//! Workers record into one of [`RECORDER_SHARDS`] mutex-guarded shards (a
//! session always uses the same one), so recording is cheap and uncontended
//! enough; the progress task and the final summary merge the shards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::proto::{code, code_name};

/// How many shards recording is spread over.
pub const RECORDER_SHARDS: usize = 16;
/// Latencies are kept with this many significant digits.
const SIGNIFICANT_DIGITS: u8 = 3;

/// What one operation type measured.
#[derive(Clone)]
pub struct OpStats {
    /// Latency of every answered request, in microseconds (error replies too).
    pub latency_us: Histogram<u64>,
    /// Errors by `KeeperException.Code`.
    pub errors: BTreeMap<i32, u64>,
    /// How many of `errors` the workload does not expect (see [`OpSummary`]).
    pub unexpected_errors: u64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            latency_us: Histogram::new(SIGNIFICANT_DIGITS).expect("valid histogram"),
            errors: BTreeMap::new(),
            unexpected_errors: 0,
        }
    }

    fn add(&mut self, other: &OpStats) {
        self.latency_us
            .add(&other.latency_us)
            .expect("auto-resizing histogram");
        for (code, n) in &other.errors {
            *self.errors.entry(*code).or_default() += n;
        }
        self.unexpected_errors += other.unexpected_errors;
    }
}

#[derive(Default)]
struct Shard {
    total: BTreeMap<&'static str, OpStats>,
    /// Every op since the last progress line, warm-up included.
    interval: Option<Histogram<u64>>,
    interval_errors: u64,
}

/// Where workers record results.
pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
    /// Results of requests that started before this are not kept (warm-up);
    /// unset until the sessions are connected and the clock starts.
    measure_from: OnceLock<Instant>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            shards: (0..RECORDER_SHARDS).map(|_| Mutex::default()).collect(),
            measure_from: OnceLock::new(),
        }
    }
}

impl Recorder {
    /// Keeps results of requests that start at `from` or later.
    pub fn measure_from(&self, from: Instant) {
        let _ = self.measure_from.set(from);
    }

    /// Records one request of type `op` that started at `start` and ended at
    /// `end`: answered (`Ok`, or `Err(code)` from the server), or failed
    /// client-side (then it is counted, but its latency is not kept).
    /// `expected` codes are counted but not as unexpected.
    pub fn record(
        &self,
        shard: usize,
        op: &'static str,
        start: Instant,
        end: Instant,
        result: Result<(), i32>,
        expected: &[i32],
    ) {
        let us = end.saturating_duration_since(start).as_micros().max(1) as u64;
        let mut shard = self.shards[shard % RECORDER_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let interval = shard
            .interval
            .get_or_insert_with(|| Histogram::new(SIGNIFICANT_DIGITS).expect("valid histogram"));
        let _ = interval.record(us);
        if result.is_err() {
            shard.interval_errors += 1;
        }
        if !matches!(self.measure_from.get(), Some(from) if start >= *from) {
            return;
        }
        let stats = shard.total.entry(op).or_insert_with(OpStats::new);
        if !matches!(result, Err(code::CONNECTION_LOSS | code::OPERATION_TIMEOUT)) {
            let _ = stats.latency_us.record(us);
        }
        if let Err(code) = result {
            *stats.errors.entry(code).or_default() += 1;
            if !expected.contains(&code) {
                stats.unexpected_errors += 1;
            }
        }
    }

    /// Takes the ops recorded since the last call: (histogram of all of
    /// them, errors among them).
    pub fn take_interval(&self) -> (Histogram<u64>, u64) {
        let mut all = Histogram::new(SIGNIFICANT_DIGITS).expect("valid histogram");
        let mut errors = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = shard.interval.take() {
                let _ = all.add(&h);
            }
            errors += std::mem::take(&mut shard.interval_errors);
        }
        (all, errors)
    }

    /// Merges the shards into the per-op totals.
    pub fn totals(&self) -> BTreeMap<&'static str, OpStats> {
        let mut out: BTreeMap<&'static str, OpStats> = BTreeMap::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (op, stats) in &shard.total {
                out.entry(op).or_insert_with(OpStats::new).add(stats);
            }
        }
        out
    }
}

/// One progress line: `[   3s] mixed   41250 ops/s  p99    0.512 ms  errors 0`;
/// `phase` is empty while measuring, else `warmup` or `draining`.
pub fn progress_line(
    workload: &str,
    elapsed: Duration,
    phase: &str,
    interval: &Histogram<u64>,
    errors: u64,
) -> String {
    format!(
        "[{:>4}s] {:<13} {:>9} {:>9} ops/s  p99 {:>8.3} ms  errors {}",
        elapsed.as_secs_f64().round(),
        workload,
        phase,
        interval.len(),
        interval.value_at_quantile(0.99) as f64 / 1000.0,
        errors
    )
}

/// The results of one operation type.
#[derive(Clone)]
pub struct OpSummary {
    pub op: String,
    /// Answered requests (error replies included; not timeouts or lost
    /// connections, which are in `errors` only).
    pub count: u64,
    pub ops_per_s: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Errors by code name (`NoNode`, `BadVersion`, `ConnectionLoss`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Errors the workload does not produce on a correct server: a lost
    /// connection, a timeout, a `NoNode` where the node must exist. Expected
    /// ones (losing a controller election: `NodeExists`) are in `errors` only.
    pub unexpected_errors: u64,
    pub latency_us: Histogram<u64>,
}

/// The results of one run.
#[derive(Clone)]
pub struct Summary {
    pub workload: String,
    /// The measured interval (warm-up excluded), in seconds.
    pub elapsed_s: f64,
    pub sessions: usize,
    pub inflight: usize,
    pub ops: Vec<OpSummary>,
}

impl Summary {
    pub fn new(
        workload: &str,
        elapsed: Duration,
        sessions: usize,
        inflight: usize,
        totals: BTreeMap<&'static str, OpStats>,
    ) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ops = totals
            .into_iter()
            .map(|(op, s)| {
                let h = &s.latency_us;
                OpSummary {
                    op: op.to_owned(),
                    count: h.len(),
                    ops_per_s: h.len() as f64 / secs,
                    mean_us: if h.is_empty() { 0.0 } else { h.mean() },
                    p50_us: h.value_at_quantile(0.50),
                    p90_us: h.value_at_quantile(0.90),
                    p99_us: h.value_at_quantile(0.99),
                    p999_us: h.value_at_quantile(0.999),
                    max_us: h.max(),
                    errors: s
                        .errors
                        .iter()
                        .map(|(code, n)| (code_name(*code), *n))
                        .collect(),
                    unexpected_errors: s.unexpected_errors,
                    latency_us: s.latency_us,
                }
            })
            .collect();
        Summary {
            workload: workload.to_owned(),
            elapsed_s: secs,
            sessions,
            inflight,
            ops,
        }
    }

    /// All answered requests per second, every op type together.
    pub fn ops_per_s(&self) -> f64 {
        self.ops.iter().map(|o| o.ops_per_s).sum()
    }

    pub fn unexpected_errors(&self) -> u64 {
        self.ops.iter().map(|o| o.unexpected_errors).sum()
    }

    pub fn op(&self, name: &str) -> Option<&OpSummary> {
        self.ops.iter().find(|o| o.op == name)
    }

    /// The table printed at the end of a run (latencies in milliseconds).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "workload {}: {} sessions x {} in flight, {:.1} s measured",
            self.workload, self.sessions, self.inflight, self.elapsed_s
        );
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
            "op", "count", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let ms = |us: u64| us as f64 / 1000.0;
        for o in &self.ops {
            let errors = if o.errors.is_empty() {
                "0".to_owned()
            } else {
                o.errors
                    .iter()
                    .map(|(name, n)| format!("{name}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = writeln!(
                out,
                "{:<18} {:>10} {:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}  {}",
                o.op,
                o.count,
                o.ops_per_s,
                ms(o.p50_us),
                ms(o.p90_us),
                ms(o.p99_us),
                ms(o.p999_us),
                ms(o.max_us),
                errors
            );
        }
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>11.0}  unexpected errors: {}",
            "total",
            self.ops.iter().map(|o| o.count).sum::<u64>(),
            self.ops_per_s(),
            self.unexpected_errors()
        );
        out
    }

    /// The summary as a JSON object (latencies in microseconds).
    pub fn json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"workload\":{},\"elapsed_s\":{:.3},\"sessions\":{},\"inflight\":{},\"ops_per_s\":{:.1},\"unexpected_errors\":{},\"ops\":[",
            json_string(&self.workload),
            self.elapsed_s,
            self.sessions,
            self.inflight,
            self.ops_per_s(),
            self.unexpected_errors()
        );
        for (i, o) in self.ops.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"op\":{},\"count\":{},\"ops_per_s\":{:.1},\"mean_us\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"unexpected_errors\":{},\"errors\":{{",
                json_string(&o.op),
                o.count,
                o.ops_per_s,
                o.mean_us,
                o.p50_us,
                o.p90_us,
                o.p99_us,
                o.p999_us,
                o.max_us,
                o.unexpected_errors
            );
            for (j, (name, n)) in o.errors.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:{}", json_string(name), n);
            }
            out.push_str("}}");
        }
        out.push_str("]}\n");
        out
    }

    /// Writes `<dir>/<op>.hgrm` per op type: HdrHistogram's percentile
    /// distribution text (values in milliseconds), as `outputPercentileDistribution`
    /// prints it, so HdrHistogram's plotter reads it.
    pub fn write_hgrm(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for o in &self.ops {
            std::fs::write(dir.join(format!("{}.hgrm", o.op)), hgrm(&o.latency_us))?;
        }
        Ok(())
    }

    /// A latency-by-percentile plot, one line per op type, percentiles on
    /// the usual 1/(1-p) log axis (50%, 90%, 99%, 99.9%, 99.99%), milliseconds
    /// on a log axis.
    pub fn svg(&self) -> String {
        svg(self)
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hgrm(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1000.0; // microseconds -> milliseconds
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    if h.is_empty() {
        return out;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let inverse = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            f64::INFINITY
        };
        let value = h.highest_equivalent(v.value_iterated_to()) as f64 / SCALE;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {:10} {inverse:14.2}",
                // the count up to here
                count_at_or_below(h, v.value_iterated_to())
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {:10}", h.len());
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

fn count_at_or_below(h: &Histogram<u64>, value: u64) -> u64 {
    h.count_between(0, value)
}

fn svg(summary: &Summary) -> String {
    const W: f64 = 800.0;
    const H: f64 = 480.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 160.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    const COLORS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    // x: log10(1/(1-p)) from 0 (p=0) to 5 (p=99.999%).
    let x_max = 5.0;
    let max_ms = summary
        .ops
        .iter()
        .map(|o| o.max_us as f64 / 1000.0)
        .fold(0.01f64, f64::max);
    let min_ms = summary
        .ops
        .iter()
        .filter(|o| o.count > 0)
        .map(|o| o.latency_us.min().max(1) as f64 / 1000.0)
        .fold(max_ms, f64::min);
    let (y_lo, y_hi) = (
        min_ms.log10().floor(),
        max_ms.log10().ceil().max(min_ms.log10().floor() + 1.0),
    );
    let px = |x: f64| LEFT + (x / x_max).min(1.0) * (W - LEFT - RIGHT);
    let py = |ms: f64| {
        let y = (ms.max(1e-6).log10() - y_lo) / (y_hi - y_lo);
        H - BOTTOM - y * (H - TOP - BOTTOM)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"24\" font-size=\"15\">herd-bench {}: latency by percentile ({} sessions x {})</text>",
        xml(&summary.workload),
        summary.sessions,
        summary.inflight
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = px(i as f64);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    let mut decade = y_lo;
    while decade <= y_hi {
        let y = py(10f64.powf(decade));
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            10f64.powf(decade)
        );
        decade += 1.0;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text><text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">latency (ms)</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        H / 2.0,
        H / 2.0
    );
    for (i, o) in summary.ops.iter().filter(|o| o.count > 0).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = String::new();
        for step in 0..=200 {
            let x = x_max * step as f64 / 200.0;
            let q = (1.0 - 10f64.powf(-x)).min(1.0);
            let ms = o.latency_us.value_at_quantile(q) as f64 / 1000.0;
            let _ = write!(points, "{:.1},{:.1} ", px(x), py(ms));
        }
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.trim_end()
        );
        let ly = TOP + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            W - RIGHT + 12.0,
            ly - 4.0,
            W - RIGHT + 30.0,
            ly + 1.0,
            xml(&o.op)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        let rec = Recorder::default();
        let t = Instant::now();
        rec.measure_from(t);
        for us in 1..=1000u64 {
            rec.record(0, "getData", t, t + Duration::from_micros(us), Ok(()), &[]);
        }
        rec.record(
            1,
            "setData",
            t,
            t + Duration::from_micros(500),
            Err(-103),
            &[],
        );
        rec.record(
            1,
            "setData",
            t,
            t + Duration::from_micros(500),
            Err(-110),
            &[-110],
        );
        Summary::new("mixed", Duration::from_secs(2), 1, 1, rec.totals())
    }

    #[test]
    fn summary_counts_latency_and_errors() {
        let s = summary();
        let get = s.op("getData").unwrap();
        assert_eq!(get.count, 1000);
        assert_eq!(get.ops_per_s, 500.0);
        assert!((495..=505).contains(&get.p50_us), "{}", get.p50_us);
        assert!(get.max_us >= 1000);
        let set = s.op("setData").unwrap();
        assert_eq!(set.errors.get("BadVersion"), Some(&1));
        assert_eq!(set.errors.get("NodeExists"), Some(&1));
        assert_eq!(s.unexpected_errors(), 1);
    }

    #[test]
    fn outputs_are_well_formed() {
        let s = summary();
        let json = s.json();
        assert!(json.starts_with("{\"workload\":\"mixed\""));
        assert!(json.contains("\"BadVersion\":1"));
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        let svg = s.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        let h = hgrm(&s.op("getData").unwrap().latency_us);
        assert!(h.contains("#[Max     ="));
        assert!(s.table().contains("unexpected errors: 1"));
    }
}
