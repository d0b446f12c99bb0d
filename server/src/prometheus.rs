//! The Prometheus endpoint ZooKeeper's `PrometheusMetricsProvider` serves:
//! `GET /metrics` on `metricsProvider.httpHost:httpPort`, in the text format
//! 0.0.4, with ZooKeeper's metric names and types, so its dashboards and alerts
//! work unchanged. Values are written as Java writes doubles (`5.0`,
//! `1.2345678E7`), labels with ZooKeeper's trailing comma, and each summary
//! with its 0.5 quantile, `_count` and `_sum` (ZooKeeper's basic level).
//!
//! Served by one thread of its own (`herd-metrics`, see [`crate::http`]),
//! never by a shard: a scrape asks the shards for their
//! watch counts over a channel, as `mntr` does, and reads the rest from shared
//! counters. ZooKeeper's summaries cover a sliding ten-minute window; herd's
//! cover everything since start (or `srst`), as its `mntr` does.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use engine::tree::DataTree;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};

use crate::http;
use crate::metrics::{self, Metric, Value};
use crate::stats::Shared;

/// The content type of the text format, as ZooKeeper's endpoint sends it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` (port 0 picks one) and serves scrapes until dropped.
pub fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    tree: Arc<DataTree>,
) -> std::io::Result<http::Endpoint> {
    http::serve(addr, "herd-metrics", move |request| {
        let (shared, tree) = (shared.clone(), tree.clone());
        async move { answer(&request, &shared, &tree).await }
    })
}

async fn answer<B>(
    request: &Request<B>,
    shared: &Shared,
    tree: &DataTree,
) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    if request.uri().path() != "/metrics" {
        let body = Bytes::from_static(b"Not Found: herd serves /metrics\n");
        return http::reply(StatusCode::NOT_FOUND, text, body);
    }
    if !matches!(*request.method(), Method::GET | Method::POST | Method::HEAD) {
        let body = Bytes::from_static(b"Method Not Allowed\n");
        return http::reply(StatusCode::METHOD_NOT_ALLOWED, text, body);
    }
    let body = render(&metrics::current(shared, tree).await);
    http::reply(StatusCode::OK, CONTENT_TYPE, Bytes::from(body))
}

/// `metrics` in the text format; text values (version, state) are left out.
pub fn render(metrics: &[Metric]) -> String {
    let mut s = String::new();
    for m in metrics {
        let name = m.name;
        let kind = match &m.value {
            Value::Text(_) => continue,
            Value::Gauge(_) | Value::Ratio(_) => "gauge",
            Value::Count(_) => "counter",
            Value::Summary(_) => "summary",
        };
        let _ = writeln!(s, "# HELP {name} {name}\n# TYPE {name} {kind}");
        let mut sample = |v: f64| {
            let _ = writeln!(s, "{name} {}", java_double(v));
        };
        match &m.value {
            Value::Text(_) => {}
            Value::Gauge(v) => sample(*v as f64),
            Value::Ratio(v) => sample(*v),
            Value::Count(v) => sample(*v as f64),
            Value::Summary(h) => {
                // The median is QUANTILES' first; a value recorded once is its own.
                let p50 = h.quantiles.map_or(h.mean, |q| q[0]);
                let p50 = if h.count == 0 { f64::NAN } else { p50 };
                let _ = writeln!(s, "{name}{{quantile=\"0.5\",}} {}", java_double(p50));
                let _ = writeln!(s, "{name}_count {}", java_double(h.count as f64));
                let _ = writeln!(s, "{name}_sum {}", java_double(h.sum));
            }
        }
    }
    s
}

/// `v` as ZooKeeper's exporter writes it (Java's `Double.toString`, with `+Inf`
/// and `-Inf` as the text format has them): at least one decimal, and
/// scientific notation (`1.2345678E7`) from 10^7 up and below 10^-3.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let magnitude = v.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{v}");
        return if text.contains('.') {
            text
        } else {
            text + ".0"
        };
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').expect("{:e} writes an exponent");
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_as_java_writes_them() {
        for (v, text) in [
            (0.0, "0.0"),
            (5.0, "5.0"),
            (0.25, "0.25"),
            (1234567.0, "1234567.0"),
            (12345678.0, "1.2345678E7"),
            (10_000_000.0, "1.0E7"),
            (0.0001, "1.0E-4"),
            (-3.5, "-3.5"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(java_double(v), text, "{v}");
        }
    }

    #[test]
    fn each_kind_has_its_type_line_and_samples() {
        let metrics = [
            Metric {
                name: "version",
                value: Value::Text("3.9.3".into()),
            },
            Metric {
                name: "znode_count",
                value: Value::Gauge(5),
            },
            Metric {
                name: "diff_count",
                value: Value::Count(2),
            },
            Metric {
                name: "fsynctime",
                value: Value::Summary(metrics::Summary {
                    count: 0,
                    sum: 0.0,
                    mean: 0.0,
                    min: 0.0,
                    max: 0.0,
                    quantiles: Some([0.0; 4]),
                    fractional: true,
                }),
            },
        ];
        assert_eq!(
            render(&metrics),
            "# HELP znode_count znode_count\n# TYPE znode_count gauge\nznode_count 5.0\n\
             # HELP diff_count diff_count\n# TYPE diff_count counter\ndiff_count 2.0\n\
             # HELP fsynctime fsynctime\n# TYPE fsynctime summary\n\
             fsynctime{quantile=\"0.5\",} NaN\nfsynctime_count 0.0\nfsynctime_sum 0.0\n"
        );
    }
}
