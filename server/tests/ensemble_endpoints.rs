//! A 3-member ensemble's HTTP endpoints: each member serves its own role and
//! quorum in the Prometheus metrics (ZooKeeper's ensemble gauges: quorum_size,
//! learners, synced_followers, on the leader only where ZooKeeper has them
//! there) and in the AdminServer (`voting_view` lists the ensemble, `monitor`
//! the member's state), read over HTTP from each member's own address.

mod common;

use common::ensemble::Ensemble;
use common::http_get;

/// The value of the unlabelled sample `name` in `text`, if there is one.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn each_member_serves_its_role_and_quorum_over_http() {
    let (metrics_port, admin_port) = (
        common::free_port("127.0.0.1"),
        common::free_port("127.0.0.1"),
    );
    let e = Ensemble::start(
        3,
        0,
        &format!(
            "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.\
             PrometheusMetricsProvider\nmetricsProvider.httpPort={metrics_port}\n\
             admin.enableServer=true\nadmin.serverPort={admin_port}\n"
        ),
    );
    let leader = e.settled();
    for m in &e.members {
        let at = |port: u16| format!("{}:{port}", common::ensemble::Member::ip(m.id));
        let (status, _, text) = http_get(at(metrics_port).parse().unwrap(), "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "member {}", m.id);
        assert_eq!(sample(&text, "quorum_size"), Some(3.0), "member {}", m.id);
        assert!(text.contains("# TYPE election_time summary"), "{text}");
        assert!(
            sample(&text, "election_time_count").unwrap() >= 1.0,
            "member {}: its election is counted",
            m.id
        );
        if m.id == leader {
            assert_eq!(sample(&text, "learners"), Some(2.0), "{text}");
            assert_eq!(sample(&text, "synced_followers"), Some(2.0), "{text}");
        } else {
            assert_eq!(sample(&text, "learners"), None, "a leader's gauge only");
        }

        let (status, _, view) = http_get(at(admin_port).parse().unwrap(), "/commands/voting_view");
        assert_eq!(status, "HTTP/1.1 200 OK");
        for id in 1..=3 {
            let ip = common::ensemble::Member::ip(id);
            assert!(
                view.contains(&format!("\"{id}\": \"{ip}:")) && view.contains(":participant"),
                "member {}: {view}",
                m.id
            );
        }
        let (_, _, monitor) = http_get(at(admin_port).parse().unwrap(), "/commands/mntr");
        let role = if m.id == leader { "leader" } else { "follower" };
        assert!(
            monitor.contains(&format!("\"server_state\": \"{role}\"")),
            "member {}: {monitor}",
            m.id
        );
    }
}
