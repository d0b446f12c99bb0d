//! The AdminServer: ZooKeeper's HTTP interface to its commands. `GET
//! <commandURL>` lists the commands as links; `GET <commandURL>/<name>` (a
//! command's name or one of its aliases, `srvr`, `mntr`, `cons`, ...) answers
//! with a JSON object holding the command's fields, then `command` (its
//! primary name) and `error` (`null`, or why it failed), as ZooKeeper's
//! Jetty-based server does. An unknown command is answered 200 with an error,
//! as there; any other path is 404 and any other method 405.
//!
//! Served by a thread of its own (`herd-admin`, see [`crate::http`]), never by
//! a shard; commands read what `mntr` and the four-letter words read (the
//! shared counters, the tree, the shards' watches asked over their channels).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use engine::tree::DataTree;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value as Json};

use crate::config::{AdminConfig, Config};
use crate::fourlw::{dir_size, environment, WatchGroups};
use crate::http;
use crate::metrics::{self, Flat};
use crate::stats::Shared;

/// Each command's primary name and its aliases, by primary name.
pub const COMMANDS: [(&str, &[&str]); 16] = [
    ("configuration", &["conf", "config"]),
    ("connection_stat_reset", &["crst"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("dump", &[]),
    ("environment", &["envi", "env"]),
    ("is_read_only", &["isro"]),
    ("monitor", &["mntr"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stat_reset", &["srst"]),
    ("stats", &["stat"]),
    ("voting_view", &[]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
];

/// The primary name of the command `name` names, if any.
pub fn primary(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(primary, aliases)| *primary == name || aliases.contains(&name))
        .map(|(primary, _)| *primary)
}

/// What a command needs to run.
struct Context {
    config: Arc<Config>,
    shared: Arc<Shared>,
    tree: Arc<DataTree>,
}

/// Binds the configured address and serves commands until dropped.
pub fn serve(
    admin: &AdminConfig,
    config: Arc<Config>,
    shared: Arc<Shared>,
    tree: Arc<DataTree>,
) -> std::io::Result<http::Endpoint> {
    let context = Arc::new(Context {
        config,
        shared,
        tree,
    });
    let url = admin.command_url.clone();
    http::serve(admin.addr, "herd-admin", move |request| {
        let (context, url) = (context.clone(), url.clone());
        async move { answer(&request, &url, &context).await }
    })
}

async fn answer<B>(request: &Request<B>, url: &str, context: &Context) -> Response<Full<Bytes>> {
    let html = "text/html; charset=utf-8";
    let path = request.uri().path();
    let rest = path
        .strip_prefix(url)
        .filter(|r| r.is_empty() || r.starts_with('/'));
    let Some(rest) = rest else {
        return http::reply(
            StatusCode::NOT_FOUND,
            html,
            Bytes::from_static(b"Not Found\n"),
        );
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let body = Bytes::from_static(b"Method Not Allowed\n");
        return http::reply(StatusCode::METHOD_NOT_ALLOWED, html, body);
    }
    let name = rest.trim_start_matches('/');
    if name.is_empty() {
        let mut links = String::new();
        for (command, _) in COMMANDS {
            let _ = writeln!(links, "<a href=\"{url}/{command}\">{command}</a>\n<br/>");
        }
        return http::reply(StatusCode::OK, html, Bytes::from(links));
    }
    let (mut body, command) = match primary(name) {
        Some(command) => (run(command, context).await, command),
        None => {
            let mut fields = Map::new();
            fields.insert("error".into(), format!("Unknown command: {name}").into());
            (fields, name)
        }
    };
    // Then `command` and `error`, last, as ZooKeeper writes them.
    let error = body.remove("error").unwrap_or(Json::Null);
    body.insert("command".into(), command.into());
    body.insert("error".into(), error);
    let text = serde_json::to_string_pretty(&body).expect("a JSON map serialises");
    http::reply(StatusCode::OK, "application/json", Bytes::from(text))
}

/// The fields `command` answers with (an `error` among them if it failed).
async fn run(command: &str, context: &Context) -> Map<String, Json> {
    let Context {
        config,
        shared,
        tree,
    } = context;
    let about_serving = !matches!(
        command,
        "ruok" | "environment" | "configuration" | "dirs" | "is_read_only" | "voting_view"
    );
    if about_serving && shared.mode().is_none() {
        let mut m = Map::new();
        m.insert("error".into(), "server is not initialized".into());
        return m;
    }
    let watches = match command {
        "watch_summary" | "watches" | "watches_by_path" => shared.watches().await,
        _ => Vec::new(),
    };
    let object = |v: Json| match v {
        Json::Object(m) => m,
        _ => unreachable!("json!({{..}}) is an object"),
    };
    match command {
        "ruok" => Map::new(),
        "is_read_only" => object(json!({ "read_only": false })),
        "dirs" => {
            let (data, log) = (dir_size(&config.data_dir), dir_size(&config.data_log_dir));
            object(json!({ "datadir_size": data, "logdir_size": log }))
        }
        "environment" => environment()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect(),
        "configuration" => object(json!({
            "client_port": shared.client_port.load(Relaxed),
            "data_dir": config.data_dir.display().to_string(),
            "data_log_dir": config.data_log_dir.display().to_string(),
            "tick_time": config.tick_time_ms,
            "max_client_cnxns": config.max_client_cnxns,
            "min_session_timeout": config.min_session_timeout_ms,
            "max_session_timeout": config.max_session_timeout_ms,
            "server_id": config.server_id,
            "client_port_listen_backlog": -1,
        })),
        "monitor" => {
            let mut m = Map::new();
            for metric in metrics::current(shared, tree).await {
                metric.flatten(|name, value| {
                    m.insert(name.to_owned(), flat(value));
                });
            }
            m
        }
        "server_stats" | "stats" => {
            let metrics = metrics::gather(shared, tree, 0, None);
            let mut stats = Map::new();
            for (key, metric) in [
                ("packets_sent", "packets_sent"),
                ("packets_received", "packets_received"),
                ("server_state", "server_state"),
                ("outstanding_requests", "outstanding_requests"),
                ("avg_latency", "avg_latency"),
                ("max_latency", "max_latency"),
                ("min_latency", "min_latency"),
                ("num_alive_client_connections", "num_alive_connections"),
                ("auth_failed_count", "auth_failed_count"),
                ("uptime", "uptime"),
            ] {
                if let Some(m) = metrics.iter().find(|m| m.name == metric) {
                    m.flatten(|_, value| {
                        stats.insert(key.into(), flat(value));
                    });
                }
            }
            let exceeded = shared
                .storage
                .lock()
                .map_or(0, |s| s.fsync_threshold_exceeded);
            stats.insert("fsync_threshold_exceed_count".into(), exceeded.into());
            stats.insert("data_dir_size".into(), dir_size(&config.data_dir).into());
            stats.insert("log_dir_size".into(), dir_size(&config.data_log_dir).into());
            stats.insert("provider_null".into(), false.into());
            stats.insert("last_processed_zxid".into(), tree.last_zxid().into());
            let mut m = object(json!({
                "version": metrics::version(),
                "read_only": false,
                "server_stats": stats,
                "node_count": metrics::znode_count(tree),
            }));
            if command == "stats" {
                m.insert("connections".into(), connections(shared, false).into());
                m.insert("secure_connections".into(), Json::Array(Vec::new()));
            }
            m
        }
        "connections" => object(json!({
            "connections": connections(shared, true),
            "secure_connections": [],
        })),
        "connection_stat_reset" => {
            shared.reset_connection_stats();
            Map::new()
        }
        "stat_reset" => {
            shared.reset_server_stats().await;
            Map::new()
        }
        "watch_summary" => {
            let groups = WatchGroups::of(&watches);
            object(json!({
                "num_connections": groups.by_session.len(),
                "num_paths": groups.by_path.len(),
                "num_total_watches": watches.len(),
            }))
        }
        "watches" => {
            let by_session: Map<String, Json> = WatchGroups::of(&watches)
                .by_session
                .into_iter()
                .map(|(id, paths)| (id.to_string(), json!(paths)))
                .collect();
            object(json!({ "session_id_to_watched_paths": by_session }))
        }
        "watches_by_path" => {
            let by_path: Map<String, Json> = WatchGroups::of(&watches)
                .by_path
                .into_iter()
                .map(|(path, ids)| (path.to_owned(), json!(ids)))
                .collect();
            object(json!({ "path_to_session_ids": by_path }))
        }
        "dump" => {
            // herd's session tracker is the pipeline's; what the tree holds of
            // each session is its timeout, so sessions are grouped by timeout.
            let mut by_timeout: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            let mut ephemerals = Map::new();
            for (id, timeout) in tree.sessions() {
                by_timeout.entry(timeout.to_string()).or_default().push(id);
                let paths = tree.ephemerals(id);
                if !paths.is_empty() {
                    ephemerals.insert(id.to_string(), json!(paths));
                }
            }
            object(json!({
                "expiry_time_to_session_ids": by_timeout,
                "session_id_to_ephemeral_paths": ephemerals,
            }))
        }
        "voting_view" => {
            let mut members = Map::new();
            if shared.quorum.lock().expect("quorum").is_some() {
                for (id, line) in &config.ensemble.servers {
                    members.insert(id.to_string(), line.to_string().into());
                }
            }
            object(json!({ "current_config": members }))
        }
        _ => unreachable!("every command of COMMANDS is run here"),
    }
}

/// A `mntr` value as JSON: numbers stay numbers, whole ones integers.
fn flat(value: Flat) -> Json {
    match value {
        Flat::Text(v) => v.into(),
        Flat::Int(v) => v.into(),
        Flat::Ratio(v)
        | Flat::Stat {
            v,
            fractional: true,
        } => v.into(),
        Flat::Stat { v, .. } => (v as i64).into(),
    }
}

/// Every client connection, as `cons` lists them; with `session` its
/// session's fields too.
fn connections(shared: &Shared, session: bool) -> Vec<Json> {
    let conns = shared.conns.lock().expect("conns lock");
    let mut list: Vec<_> = conns.values().collect();
    list.sort_by_key(|c| c.peer);
    list.into_iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("remote_socket_address".into(), peer(c.peer).into());
            m.insert("outstanding_requests".into(), c.queued.load(Relaxed).into());
            m.insert("packets_received".into(), c.received.load(Relaxed).into());
            m.insert("packets_sent".into(), c.sent.load(Relaxed).into());
            let id = c.session.load(Relaxed);
            if session && id != 0 {
                m.insert("session_id".into(), id.into());
                m.insert("session_timeout".into(), c.timeout_ms.load(Relaxed).into());
                m.insert("last_zxid".into(), c.last_zxid.load(Relaxed).into());
            }
            Json::Object(m)
        })
        .collect()
}

/// `ip:port` as Java writes a socket address (no brackets around IPv6).
fn peer(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_find_their_command() {
        assert_eq!(primary("srvr"), Some("server_stats"));
        assert_eq!(primary("server_stats"), Some("server_stats"));
        assert_eq!(primary("mntr"), Some("monitor"));
        assert_eq!(primary("env"), Some("environment"));
        assert_eq!(primary("nosuch"), None);
        let mut names: Vec<_> = COMMANDS.iter().map(|(p, _)| *p).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted, "listed sorted, as ZooKeeper lists them");
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
    }

    #[test]
    fn whole_statistics_are_integers_and_fractions_stay_fractions() {
        assert_eq!(flat(Flat::Int(3)), json!(3));
        assert_eq!(flat(Flat::Ratio(0.5)), json!(0.5));
        let whole = Flat::Stat {
            v: 7.0,
            fractional: false,
        };
        assert_eq!(flat(whole), json!(7));
        let fraction = Flat::Stat {
            v: 0.25,
            fractional: true,
        };
        assert_eq!(flat(fraction), json!(0.25));
        assert_eq!(flat(Flat::Text("leader")), json!("leader"));
    }
}
