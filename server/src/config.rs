//! Server configuration: ZooKeeper's `zoo.cfg` keys, plus the Java system
//! properties ZooKeeper users set (`zookeeper.extendedTypesEnabled`,
//! `jute.maxbuffer`, ...) accepted as keys too, so an existing configuration
//! carries over. An unknown key is a warning; an invalid value is an error that
//! names the key and the file.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Everything a standalone herd needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub client_port: u16,
    pub client_port_address: IpAddr,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub tick_time_ms: u32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Connections per client IP; 0 = unlimited.
    pub max_client_cnxns: usize,
    /// Largest frame accepted (`jute.maxbuffer`): a longer one closes the
    /// connection. ZooKeeper's default, 1 MiB - 1.
    pub max_buffer_bytes: usize,
    /// Number of glommio shards (executor threads).
    pub shards: usize,
    /// Four-letter words allowed (`4lw.commands.whitelist`).
    pub four_letter_words: BTreeSet<String>,
    /// TTL nodes allowed (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
    /// `user:base64(sha1(user:password))` of the super user.
    pub super_digest: Option<String>,
    pub container_check_interval_ms: u64,
    pub container_max_never_used_interval_ms: u64,
    /// The `myid` of this server; 0 standalone.
    pub server_id: u8,
    /// `server.N` lines and the quorum keys.
    pub ensemble: crate::ensemble::EnsembleConfig,
    /// Size transaction log segments are preallocated to (`preAllocSize`, given in KiB).
    pub pre_alloc_bytes: u64,
    /// `forceSync`: fdatasync each batch before acknowledging it. `forceSync=no` is
    /// unsafe: an acknowledged write can be lost in a power failure or kernel crash.
    pub force_sync: bool,
    /// Extra milliseconds each group commit takes, to simulate a slow disk in
    /// benchmarks and tests (`herd.simulatedFlushDelayMs`; never on by default).
    pub simulated_flush_delay_ms: u64,
    /// The last zxid counter an epoch uses, for tests that make a leader run
    /// out of zxids (`herd.lastZxidCounter`, at least 1; ZooKeeper's limit,
    /// 2^32 - 2, unless set).
    pub last_zxid_counter: u32,
    /// A snapshot is taken after about this many transactions (`snapCount`; a
    /// random point in its second half, as ZooKeeper does, so servers differ).
    pub snap_count: u64,
    /// Snapshots kept when purging (`autopurge.snapRetainCount`, at least 3).
    pub snap_retain_count: usize,
    /// `autopurge.purgeInterval`: 0 keeps every snapshot and log segment (the
    /// default, as in ZooKeeper); otherwise old ones are purged at start and then
    /// every this many hours.
    pub purge_interval_hours: u64,
    /// Where the Prometheus endpoint listens, if `metricsProvider.className` is
    /// ZooKeeper's PrometheusMetricsProvider (`metricsProvider.httpHost`, by
    /// default 0.0.0.0, and `metricsProvider.httpPort`, by default 7000).
    pub prometheus: Option<std::net::SocketAddr>,
    /// The AdminServer, if on. A zoo.cfg turns it on as in ZooKeeper (unless
    /// `admin.enableServer=false`), at `admin.serverAddress` (0.0.0.0),
    /// `admin.serverPort` (8080) and `admin.commandURL` (`/commands`); the
    /// default configuration (no zoo.cfg) has it off.
    pub admin: Option<AdminConfig>,
    /// `herd.logLevel` (ERROR, WARN, INFO, DEBUG; default INFO); the
    /// environment overrides it (see [`crate::logging`]).
    pub log_level: crate::logging::Level,
    /// `fsync.warningthresholdms` (default 1000, as ZooKeeper's): a log flush
    /// slower than this is logged and counted (`fsync_threshold_exceed_count`).
    pub fsync_warning_threshold_ms: u64,
    /// `herd.slowRequestWarningMs` (default 1000; 0: off): requests answered
    /// slower than this are logged, at most once a second per shard.
    pub slow_request_warning_ms: u64,
}

/// Where the AdminServer listens and the path its commands are under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub addr: std::net::SocketAddr,
    /// Starts with `/`, no trailing `/`.
    pub command_url: String,
}

/// The `metricsProvider.className` that turns the Prometheus endpoint on.
pub const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// Every four-letter word herd answers.
pub const ALL_FOUR_LETTER_WORDS: [&str; 15] = [
    "ruok", "srvr", "stat", "isro", "envi", "conf", "cons", "crst", "srst", "mntr", "wchs", "wchc",
    "wchp", "dump", "dirs",
];

impl Default for Config {
    fn default() -> Self {
        let tick = 2000;
        Config {
            client_port: 2181,
            client_port_address: IpAddr::from([127, 0, 0, 1]),
            data_dir: PathBuf::from("herd-data"),
            data_log_dir: PathBuf::from("herd-data"),
            tick_time_ms: tick,
            min_session_timeout_ms: 2 * tick as i32,
            max_session_timeout_ms: 20 * tick as i32,
            max_client_cnxns: 60,
            max_buffer_bytes: 0xfffff,
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            four_letter_words: ["srvr".to_owned()].into(),
            extended_types: false,
            super_digest: None,
            container_check_interval_ms: 60_000,
            container_max_never_used_interval_ms: 0,
            server_id: 0,
            ensemble: crate::ensemble::EnsembleConfig::default(),
            pre_alloc_bytes: 64 << 20,
            force_sync: true,
            simulated_flush_delay_ms: 0,
            last_zxid_counter: engine::zab::broadcast::LAST_COUNTER,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            prometheus: None,
            admin: None,
            log_level: crate::logging::Level::Info,
            fsync_warning_threshold_ms: 1000,
            slow_request_warning_ms: 1000,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads a zoo.cfg file. Returns the config and warnings for unknown keys.
    pub fn from_file(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses zoo.cfg text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut c = Config::default();
        let mut warnings = Vec::new();
        let (mut min_set, mut max_set, mut log_dir_set) = (false, false, false);
        let (mut prometheus, mut metrics_host, mut metrics_port) =
            (false, IpAddr::from([0, 0, 0, 0]), 7000);
        let (mut admin, mut admin_host, mut admin_port, mut command_url) = (
            true,
            IpAddr::from([0, 0, 0, 0]),
            8080,
            "/commands".to_owned(),
        );
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError(format!(
                    "{origin}:{}: expected key=value, got {line:?}",
                    n + 1
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| {
                ConfigError(format!("{origin}:{}: {key}: {what}, got {value:?}", n + 1))
            };
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad("expected a non-negative integer"))
            };
            let ticks = |v: &str| match v.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad("expected a positive number of ticks")),
            };
            let boolean = |v: &str| v.parse::<bool>().map_err(|_| bad("expected true or false"));
            match key {
                "clientPort" => {
                    c.client_port = num(value)?.try_into().map_err(|_| bad("not a port"))?
                }
                "clientPortAddress" => {
                    c.client_port_address =
                        value.parse().map_err(|_| bad("expected an IP address"))?
                }
                "metricsProvider.className" => {
                    prometheus = match value {
                        PROMETHEUS_PROVIDER => true,
                        "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
                        | "org.apache.zookeeper.metrics.impl.NullMetricsProvider" => false,
                        _ => {
                            return Err(bad("herd has ZooKeeper's PrometheusMetricsProvider only"))
                        }
                    }
                }
                "metricsProvider.httpHost" => {
                    metrics_host = value.parse().map_err(|_| bad("expected an IP address"))?
                }
                "metricsProvider.httpPort" => {
                    metrics_port = num(value)?.try_into().map_err(|_| bad("not a port"))?
                }
                // The exporter's JVM and worker settings have nothing to set in herd.
                k if k.starts_with("metricsProvider.") => {}
                // ZooKeeper turns it off for exactly "false", and nothing else.
                "admin.enableServer" | "zookeeper.admin.enableServer" => admin = value != "false",
                "admin.serverAddress" | "zookeeper.admin.serverAddress" => {
                    admin_host = value.parse().map_err(|_| bad("expected an IP address"))?
                }
                "admin.serverPort" | "zookeeper.admin.serverPort" => {
                    admin_port = num(value)?.try_into().map_err(|_| bad("not a port"))?
                }
                "admin.commandURL" | "zookeeper.admin.commandURL" => {
                    command_url = format!("/{}", value.trim_matches('/'))
                }
                "admin.idleTimeout" | "zookeeper.admin.idleTimeout" => {
                    num(value)?;
                }
                "dataDir" => c.data_dir = PathBuf::from(value),
                "dataLogDir" => {
                    c.data_log_dir = PathBuf::from(value);
                    log_dir_set = true;
                }
                "tickTime" => c.tick_time_ms = num(value)?.clamp(1, u32::MAX as u64) as u32,
                "minSessionTimeout" => {
                    c.min_session_timeout_ms = num(value)?.min(i32::MAX as u64) as i32;
                    min_set = true;
                }
                "maxSessionTimeout" => {
                    c.max_session_timeout_ms = num(value)?.min(i32::MAX as u64) as i32;
                    max_set = true;
                }
                "maxClientCnxns" => c.max_client_cnxns = num(value)? as usize,
                "jute.maxbuffer" => {
                    let max = num(value)?.max(1) as usize;
                    // A frame holds one znode's data at most, and znodes hold up to MAX_DATA.
                    if max > engine::znode::MAX_DATA {
                        return Err(bad(&format!(
                            "at most {} (128 MiB)",
                            engine::znode::MAX_DATA
                        )));
                    }
                    c.max_buffer_bytes = max;
                }
                "shards" => c.shards = num(value)?.max(1) as usize,
                "4lw.commands.whitelist" => {
                    c.four_letter_words = value
                        .split(',')
                        .map(|w| w.trim().to_owned())
                        .filter(|w| !w.is_empty())
                        .collect();
                    if c.four_letter_words.contains("*") {
                        c.four_letter_words = ALL_FOUR_LETTER_WORDS
                            .iter()
                            .map(|w| w.to_string())
                            .collect();
                    }
                }
                "zookeeper.extendedTypesEnabled" | "extendedTypesEnabled" => {
                    c.extended_types = value.parse().map_err(|_| bad("expected true or false"))?
                }
                "zookeeper.DigestAuthenticationProvider.superDigest"
                | "DigestAuthenticationProvider.superDigest" => {
                    if !value.contains(':') {
                        return Err(bad("expected user:base64-sha1"));
                    }
                    c.super_digest = Some(value.to_owned());
                }
                "znode.container.checkIntervalMs" | "zookeeper.znode.container.checkIntervalMs" => {
                    c.container_check_interval_ms = num(value)?.max(1)
                }
                "znode.container.maxNeverUsedIntervalMs"
                | "zookeeper.znode.container.maxNeverUsedIntervalMs" => {
                    c.container_max_never_used_interval_ms = num(value)?
                }
                "preAllocSize" | "zookeeper.preAllocSize" => {
                    c.pre_alloc_bytes = num(value)?.max(1) << 10
                }
                "snapCount" | "zookeeper.snapCount" => c.snap_count = num(value)?.max(2),
                "autopurge.snapRetainCount" => c.snap_retain_count = num(value)?.max(3) as usize,
                "autopurge.purgeInterval" => c.purge_interval_hours = num(value)?,
                "herd.logLevel" => {
                    c.log_level = crate::logging::Level::parse(value)
                        .ok_or_else(|| bad("expected ERROR, WARN, INFO or DEBUG"))?
                }
                "fsync.warningthresholdms" | "zookeeper.fsync.warningthresholdms" => {
                    c.fsync_warning_threshold_ms = num(value)?
                }
                "herd.slowRequestWarningMs" => c.slow_request_warning_ms = num(value)?,
                "herd.simulatedFlushDelayMs" => c.simulated_flush_delay_ms = num(value)?,
                "herd.lastZxidCounter" => {
                    let n = num(value)?;
                    let last = engine::zab::broadcast::LAST_COUNTER;
                    if n == 0 || n > u64::from(last) {
                        return Err(bad(&format!("expected 1 to {last}")));
                    }
                    c.last_zxid_counter = n as u32;
                }
                "forceSync" | "zookeeper.forceSync" => {
                    c.force_sync = match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(bad("expected yes or no")),
                    }
                }
                _ if key.starts_with("server.") => {
                    let line = crate::ensemble::parse_server_line(&key[7..], value)
                        .map_err(|e| bad(&e))?;
                    if c.ensemble.servers.insert(line.id, line).is_some() {
                        return Err(bad("this server id is given twice"));
                    }
                }
                "initLimit" => c.ensemble.init_limit_ticks = ticks(value)?,
                "syncLimit" => c.ensemble.sync_limit_ticks = ticks(value)?,
                "peerType" => {
                    c.ensemble.observer = match value {
                        "observer" => true,
                        "participant" => false,
                        _ => return Err(bad("expected participant or observer")),
                    }
                }
                "standaloneEnabled" => c.ensemble.standalone_enabled = boolean(value)?,
                "quorumListenOnAllIPs" => c.ensemble.quorum_listen_on_all_ips = boolean(value)?,
                "cnxTimeout" => c.ensemble.cnx_timeout_ms = num(value)?.max(1),
                "electionAlg" if value != "3" => {
                    return Err(bad(
                        "only 3 (fast leader election) exists since ZooKeeper 3.6",
                    ))
                }
                // Accepted for compatibility; their features arrive with later work.
                "electionAlg"
                | "reconfigEnabled"
                | "globalOutstandingLimit"
                | "clientPortListenBacklog" => {}
                _ => warnings.push(format!("{origin}:{}: unknown key {key} ignored", n + 1)),
            }
        }
        if prometheus {
            c.prometheus = Some(std::net::SocketAddr::new(metrics_host, metrics_port));
        }
        if admin {
            c.admin = Some(AdminConfig {
                addr: std::net::SocketAddr::new(admin_host, admin_port),
                command_url,
            });
        }
        if !min_set {
            c.min_session_timeout_ms = 2 * c.tick_time_ms as i32;
        }
        if !max_set {
            c.max_session_timeout_ms = 20 * c.tick_time_ms as i32;
        }
        if !log_dir_set {
            c.data_log_dir = c.data_dir.clone();
        }
        if c.min_session_timeout_ms > c.max_session_timeout_ms {
            return Err(ConfigError(format!(
                "{origin}: minSessionTimeout {} is larger than maxSessionTimeout {}",
                c.min_session_timeout_ms, c.max_session_timeout_ms
            )));
        }
        Ok((c, warnings))
    }

    /// How often client activity reaches the session tracker and the tracker looks
    /// for expired sessions: a quarter tick, kept between 10 and 500 ms.
    pub fn session_check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.tick_time_ms / 4).clamp(10, 500))
    }

    /// The timeout a client asking for `requested_ms` gets.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.min_session_timeout_ms, self.max_session_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_keys_and_defaults() {
        let text = "# comment\ntickTime=1000\ndataDir=/tmp/x\nclientPort=2888\n4lw.commands.whitelist=ruok, mntr\n\
                    zookeeper.extendedTypesEnabled=true\nfancy=1\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (2000, 20000)
        );
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.client_port, 2888);
        assert!(c.extended_types);
        assert_eq!(
            c.four_letter_words.iter().collect::<Vec<_>>(),
            ["mntr", "ruok"]
        );
        assert_eq!(warnings, vec!["zoo.cfg:7: unknown key fancy ignored"]);
        assert_eq!(c.negotiate_timeout(100), 2000);
        assert_eq!(c.negotiate_timeout(90_000), 20000);
    }

    #[test]
    fn invalid_values_name_key_and_file() {
        let err = Config::parse("clientPort=http\n", "conf/zoo.cfg").unwrap_err();
        assert_eq!(
            err.0,
            "conf/zoo.cfg:1: clientPort: expected a non-negative integer, got \"http\""
        );
        let err = Config::parse("minSessionTimeout=9000\nmaxSessionTimeout=10\n", "z").unwrap_err();
        assert!(
            err.0.contains("minSessionTimeout 9000 is larger"),
            "{}",
            err.0
        );
        let err = Config::parse("jute.maxbuffer=1000000000\n", "z").unwrap_err();
        assert_eq!(
            err.0,
            "z:1: jute.maxbuffer: at most 134217727 (128 MiB), got \"1000000000\""
        );
        let (c, _) = Config::parse("jute.maxbuffer=4194304\n", "z").unwrap();
        assert_eq!(c.max_buffer_bytes, 4 << 20);
        for bad in ["0", "4294967295"] {
            let err = Config::parse(&format!("herd.lastZxidCounter={bad}\n"), "z").unwrap_err();
            assert_eq!(
                err.0,
                format!("z:1: herd.lastZxidCounter: expected 1 to 4294967294, got \"{bad}\"")
            );
        }
        let (c, _) = Config::parse("herd.lastZxidCounter=40\n", "z").unwrap();
        assert_eq!(c.last_zxid_counter, 40);
    }

    #[test]
    fn an_ensembles_keys_are_read_and_checked() {
        let text = "initLimit=5\nsyncLimit=2\nserver.1=127.0.0.1:2888:3888\n\
                    server.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888:observer;2181\n\
                    peerType=observer\nstandaloneEnabled=false\nquorumListenOnAllIPs=true\n\
                    cnxTimeout=3000\nelectionAlg=3\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let e = &c.ensemble;
        assert_eq!((e.init_limit_ticks, e.sync_limit_ticks), (5, 2));
        assert_eq!(e.servers.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(e.servers[&2].host, "127.0.0.2");
        assert!(e.servers[&3].observer && e.observer);
        assert_eq!(e.servers[&3].client, Some((None, 2181)));
        assert!(!e.standalone_enabled && e.quorum_listen_on_all_ips);
        assert_eq!(e.cnx_timeout_ms, 3000);
        // (text, message)
        let cases = [
            (
                "server.1=a:1:2\nserver.1=b:1:2\n",
                "z:2: server.1: this server id is given twice, got \"b:1:2\"",
            ),
            (
                "server.1=a:1\n",
                "z:1: server.1: expected host:quorumPort:electionPort, no election port, got \"a:1\"",
            ),
            ("initLimit=0\n", "z:1: initLimit: expected a positive number of ticks, got \"0\""),
            ("peerType=leader\n", "z:1: peerType: expected participant or observer, got \"leader\""),
            (
                "electionAlg=0\n",
                "z:1: electionAlg: only 3 (fast leader election) exists since ZooKeeper 3.6, got \"0\"",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(Config::parse(text, "z").unwrap_err().0, message);
        }
    }
}
