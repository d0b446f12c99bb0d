//! Test harness: each `start()` runs a fresh in-process herd on an ephemeral
//! loopback port, stopped when the `TestServer` is dropped.
//!
//! Set `HERD_TEST_ZK=host:port` to run the same tests against another
//! ZooKeeper-protocol server instead (how their expectations were checked
//! against Apache ZooKeeper 3.8; start it with extendedTypesEnabled and the
//! super digest below, and expect the container/TTL tests to need its 60 s sweep).
#![allow(dead_code)]

pub mod raw;

use std::time::Duration;

use herd_server::{Config, Server};

/// How often the test server sweeps containers and TTL nodes.
pub const CONTAINER_CHECK_INTERVAL_MS: u64 = 300;

pub struct TestServer {
    pub addr: String,
    server: Option<Server>,
}

/// The configuration every test server uses: tickTime 2000, TTL nodes enabled,
/// super digest for `super:test`, all four-letter words, a fast container sweep.
pub fn config() -> Config {
    let text = format!(
        "clientPort=0\ntickTime=2000\nzookeeper.extendedTypesEnabled=true\n\
         zookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
         4lw.commands.whitelist=*\nznode.container.checkIntervalMs={CONTAINER_CHECK_INTERVAL_MS}\nshards=2\n"
    );
    Config::parse(&text, "test config")
        .expect("valid test config")
        .0
}

pub fn start() -> TestServer {
    start_with(config())
}

pub fn start_with(config: Config) -> TestServer {
    if let Ok(addr) = std::env::var("HERD_TEST_ZK") {
        return TestServer { addr, server: None };
    }
    let server = Server::start(config).expect("start herd");
    TestServer {
        addr: server.client_addr().to_string(),
        server: Some(server),
    }
}

/// A connected client with a 10 s session timeout.
pub async fn connect(server: &TestServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&server.addr)
        .await
        .expect("connect to test server")
}

/// A client working under `root`, created afresh. Leftovers from an earlier run
/// (only possible with `HERD_TEST_ZK`) are removed first, as the super user.
pub async fn fresh_root(server: &TestServer, root: &str) -> zookeeper_client::Client {
    let admin = connect(server).await;
    admin.auth("digest", b"super:test").await.unwrap();
    remove_tree(&admin, root).await;
    drop(admin);
    let client = connect(server).await;
    let open =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create(root, b"", &open).await.unwrap();
    client
}

async fn remove_tree(client: &zookeeper_client::Client, path: &str) {
    if let Ok(children) = client.list_children(path).await {
        for child in children {
            Box::pin(remove_tree(client, &format!("{path}/{child}"))).await;
        }
    }
    let _ = client.delete(path, None).await;
}
