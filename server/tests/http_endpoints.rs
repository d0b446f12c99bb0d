//! The HTTP endpoints beside the client port, read here over plain HTTP/1.1:
//! the Prometheus endpoint (`metricsProvider.className` set to ZooKeeper's
//! PrometheusMetricsProvider: `GET /metrics` in the text format, with
//! ZooKeeper's names and types) and the AdminServer (`admin.*`: its
//! configuration and start-up here; its commands beside a real ZooKeeper's in
//! `cross/admin_differential.py`).

mod common;

use common::http_get as get;
use zookeeper_client::{Acls, CreateMode};

/// The value of the unlabelled sample `name` in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_are_served_with_zookeepers_names_and_types() {
    let mut config = common::config();
    config.prometheus = Some("127.0.0.1:0".parse().unwrap());
    let server = common::start_with(config);
    let addr = server
        .server()
        .metrics_addr()
        .expect("the endpoint is configured");
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/m", b"12345", &open).await.unwrap();
    let _watch = client.get_and_watch_data("/m").await.unwrap();

    let (status, headers, text) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    // Every family has its HELP and TYPE lines, and every sample its family.
    let mut families = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                text.contains(&format!("# HELP {name} {name}\n# TYPE {name}")),
                "{name}"
            );
            families.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| families.contains_key(*f)))
                .unwrap_or(name);
            assert!(
                families.contains_key(family),
                "a sample without a family: {line}"
            );
        }
    }
    for (name, kind) in [
        ("znode_count", "gauge"),
        ("watch_count", "gauge"),
        ("num_alive_connections", "gauge"),
        ("packets_received", "gauge"),
        ("approximate_data_size", "gauge"),
        ("fsynctime", "summary"),
        ("readlatency", "summary"),
        ("updatelatency", "summary"),
        ("snapshottime", "summary"),
    ] {
        assert_eq!(families.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert!(
        !families.contains_key("version"),
        "text values are mntr's only"
    );
    assert_eq!(
        sample(&text, "znode_count"),
        6.0,
        "/ (twice, as ZooKeeper counts it), /zookeeper, quota, config, /m"
    );
    assert_eq!(sample(&text, "watch_count"), 1.0);
    assert_eq!(sample(&text, "num_alive_connections"), 1.0);
    assert_eq!(sample(&text, "approximate_data_size"), 5.0);
    assert!(
        text.contains("\nznode_count 6.0\n"),
        "values as Java doubles"
    );
    assert!(
        sample(&text, "fsynctime_count") >= 1.0,
        "the create was fsynced"
    );
    assert!(text.contains("\nfsynctime{quantile=\"0.5\",} "), "{text}");
    assert_eq!(
        sample(&text, "updatelatency_count"),
        2.0,
        "the new session and the create"
    );
    assert!(
        sample(&text, "readlatency_count") >= 1.0,
        "the getData (and any ping)"
    );
    assert!(text.contains("\nreadlatency{quantile=\"0.5\",} "), "{text}");

    let (status, _, _) = get(addr, "/");
    assert_eq!(
        status, "HTTP/1.1 404 Not Found",
        "only /metrics, as ZooKeeper"
    );
}

#[test]
fn the_provider_is_configured_as_in_zookeeper() {
    let parse = |text: &str| herd_server::config::Config::parse(text, "zoo.cfg");
    let (c, warnings) = parse(
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.exportJvmInfo=false\n",
    )
    .unwrap();
    assert_eq!(c.prometheus, Some("0.0.0.0:7000".parse().unwrap()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let (c, _) =
        parse("metricsProvider.httpPort=7001\nmetricsProvider.httpHost=127.0.0.2\n").unwrap();
    assert_eq!(c.prometheus, None, "no provider class: no endpoint");
    let err = parse("metricsProvider.className=com.example.Other\n").unwrap_err();
    assert!(
        err.0.contains("PrometheusMetricsProvider only"),
        "{}",
        err.0
    );
}

#[test]
fn a_metrics_port_in_use_stops_start_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = common::config();
    config.prometheus = Some(taken.local_addr().unwrap());
    let data = common::TempDir::new();
    config.data_dir = data.0.clone();
    config.data_log_dir = data.0.clone();
    let err = herd_server::Server::start(config)
        .err()
        .expect("start-up fails");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
}

#[test]
fn the_admin_server_is_configured_as_in_zookeeper() {
    use herd_server::config::{AdminConfig, Config};
    let parse = |text: &str| Config::parse(text, "zoo.cfg").unwrap().0.admin;
    let at = |addr: &str, url: &str| {
        Some(AdminConfig {
            addr: addr.parse().unwrap(),
            command_url: url.to_owned(),
        })
    };
    assert_eq!(
        parse(""),
        at("0.0.0.0:8080", "/commands"),
        "on in a zoo.cfg"
    );
    assert_eq!(parse("admin.enableServer=false\n"), None);
    assert_eq!(
        parse("admin.enableServer=False\n"),
        at("0.0.0.0:8080", "/commands"),
        "ZooKeeper turns it off for exactly \"false\""
    );
    assert_eq!(
        parse("admin.serverAddress=127.0.0.2\nadmin.serverPort=9090\nadmin.commandURL=/admin/\n"),
        at("127.0.0.2:9090", "/admin")
    );
    assert_eq!(Config::default().admin, None, "off without a zoo.cfg");
    let err = Config::parse("admin.serverPort=http\n", "zoo.cfg").unwrap_err();
    assert!(err.0.contains("admin.serverPort"), "{}", err.0);
}

#[test]
fn an_admin_port_in_use_stops_a_standalone_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = common::config();
    config.admin = Some(herd_server::config::AdminConfig {
        addr: taken.local_addr().unwrap(),
        command_url: "/commands".into(),
    });
    let data = common::TempDir::new();
    config.data_dir = data.0.clone();
    config.data_log_dir = data.0.clone();
    let err = herd_server::Server::start(config)
        .err()
        .expect("start-up fails, as ZooKeeper's exits");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("AdminServer"), "{err}");
}

#[tokio::test]
async fn commands_are_served_under_the_configured_url() {
    let mut config = common::config();
    config.admin = Some(herd_server::config::AdminConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        command_url: "/admin".into(),
    });
    let server = common::start_with(config);
    let addr = server.server().admin_addr().expect("the AdminServer is on");
    let client = common::connect(&server).await;
    client
        .create(
            "/a",
            b"x",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();

    let (status, headers, body) = get(addr, "/admin/dump");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let session = client.session_id().0;
    assert!(
        body.contains(&format!("\"{session}\": [\n      \"/a\"\n    ]")),
        "{body}"
    );
    assert!(
        body.trim_end()
            .ends_with("\"command\": \"dump\",\n  \"error\": null\n}"),
        "{body}"
    );
    let (_, _, body) = get(addr, "/admin/srvr");
    assert!(body.contains("\"command\": \"server_stats\""), "{body}");
    assert!(
        body.contains("\"node_count\": 6,"),
        "/ twice, /zookeeper x3, /a: {body}"
    );
    let (_, _, list) = get(addr, "/admin");
    assert!(
        list.contains("<a href=\"/admin/monitor\">monitor</a>"),
        "{list}"
    );
    let (status, _, _) = get(addr, "/commands/ruok");
    assert_eq!(
        status, "HTTP/1.1 404 Not Found",
        "commands are under /admin only"
    );
}

#[tokio::test]
async fn a_flush_slower_than_the_warning_threshold_is_counted() {
    let mut config = common::config();
    config.simulated_flush_delay_ms = 30;
    config.fsync_warning_threshold_ms = 10;
    config.admin = Some(herd_server::config::AdminConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        command_url: "/commands".into(),
    });
    let server = common::start_with(config);
    let addr = server.server().admin_addr().expect("the AdminServer is on");
    let count = || {
        let (_, _, body) = get(addr, "/commands/srvr");
        let at = body
            .find("\"fsync_threshold_exceed_count\": ")
            .expect("the field")
            + 32;
        body[at..]
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = count();
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/slow", b"", &open).await.unwrap();
    client.set_data("/slow", b"x", None).await.unwrap();
    assert!(
        count() >= before + 2,
        "two writes, each flushed in 30 ms, over the 10 ms threshold"
    );
}
