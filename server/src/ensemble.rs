//! The ensemble a zoo.cfg describes: its `server.N` lines, the quorum keys
//! (initLimit, syncLimit, peerType, standaloneEnabled, quorumListenOnAllIPs,
//! cnxTimeout, electionAlg) and the `myid` file in dataDir, read as ZooKeeper
//! 3.8 reads them, and the mode they start: no server line, or a single one
//! while standaloneEnabled (the default), is a standalone server, as in
//! ZooKeeper.
//!
//! herd does not replicate yet, so a configuration of a real ensemble is
//! refused at start-up with a message that says so; it is never started as a
//! standalone server that clients would take for a member.
//!
//! ```text
//! server.N=host:quorumPort:electionPort[:participant|:observer][;[clientAddress:]clientPort]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

/// One `server.N` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLine {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `;[clientAddress:]clientPort`, when given.
    pub client: Option<(Option<String>, u16)>,
}

/// The line's value as ZooKeeper writes it back (`conf`, `voting_view`):
/// `host:quorumPort:electionPort:role[;clientAddress:clientPort]`, the client
/// address 0.0.0.0 when none was given.
impl std::fmt::Display for ServerLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        write!(
            f,
            "{}:{}:{}:{role}",
            self.host, self.quorum_port, self.election_port
        )?;
        if let Some((addr, port)) = &self.client {
            write!(f, ";{}:{port}", addr.as_deref().unwrap_or("0.0.0.0"))?;
        }
        Ok(())
    }
}

/// The quorum part of a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsembleConfig {
    pub servers: BTreeMap<u64, ServerLine>,
    /// Ticks a learner may take to connect and sync with its leader.
    pub init_limit_ticks: u32,
    /// Ticks a follower may fall behind its leader.
    pub sync_limit_ticks: u32,
    /// `peerType=observer`.
    pub observer: bool,
    pub standalone_enabled: bool,
    pub quorum_listen_on_all_ips: bool,
    pub cnx_timeout_ms: u64,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            servers: BTreeMap::new(),
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            observer: false,
            standalone_enabled: true,
            quorum_listen_on_all_ips: false,
            cnx_timeout_ms: 5000,
        }
    }
}

/// How a configuration starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    /// A member of an ensemble: its id (from `myid`) and the members.
    Member {
        id: u64,
        members: usize,
    },
}

/// Parses the value of `server.<id>`; `Err` says what is wrong with it.
pub fn parse_server_line(id: &str, value: &str) -> Result<ServerLine, String> {
    let id: u64 = id
        .parse()
        .map_err(|_| format!("server id {id:?} is not a number"))?;
    let (addresses, client) = match value.split_once(';') {
        Some((a, c)) => (a, Some(parse_client(c.trim())?)),
        None => (value, None),
    };
    let (host, rest) = split_host(addresses.trim())?;
    let mut parts = rest.split(':');
    let port = |p: Option<&str>, what: &str| -> Result<u16, String> {
        let p = p.ok_or(format!("expected host:quorumPort:electionPort, no {what}"))?;
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{what} {p:?} is not a port")),
        }
    };
    let quorum_port = port(parts.next(), "quorum port")?;
    let election_port = port(parts.next(), "election port")?;
    if quorum_port == election_port {
        return Err("the quorum and election ports must differ".into());
    }
    let observer = match parts.next() {
        None | Some("participant") => false,
        Some("observer") => true,
        Some(other) => return Err(format!("{other:?}: expected participant or observer")),
    };
    if parts.next().is_some() {
        return Err("too many fields".into());
    }
    Ok(ServerLine {
        id,
        host,
        quorum_port,
        election_port,
        observer,
        client,
    })
}

/// `host:rest` where host may be a bracketed IPv6 address.
fn split_host(s: &str) -> Result<(String, &str), String> {
    let (host, rest) = if let Some(v6) = s.strip_prefix('[') {
        let (h, r) = v6.split_once(']').ok_or("an unclosed [ in the address")?;
        (
            h,
            r.strip_prefix(':').ok_or("expected : after the address")?,
        )
    } else {
        s.split_once(':')
            .ok_or("expected host:quorumPort:electionPort")?
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((host.to_owned(), rest))
}

fn parse_client(s: &str) -> Result<(Option<String>, u16), String> {
    let (address, port) = match s.rsplit_once(':') {
        Some((a, p)) => (Some(a.trim_matches(|c| c == '[' || c == ']').to_owned()), p),
        None => (None, s),
    };
    match port.parse::<u16>() {
        Ok(n) if n > 0 => Ok((address, n)),
        _ => Err(format!("client port {port:?} is not a port")),
    }
}

impl EnsembleConfig {
    /// The mode this configuration starts in, reading `myid` from
    /// `data_dir` when it describes an ensemble; `origin` names the file.
    pub fn mode(&self, data_dir: &Path, origin: &str) -> Result<Mode, String> {
        let err = |what: String| format!("{origin}: {what}");
        let participants = self.servers.values().filter(|s| !s.observer).count();
        if self.servers.is_empty() || (self.servers.len() == 1 && self.standalone_enabled) {
            if self.observer {
                return Err(err("peerType=observer needs an ensemble to observe".into()));
            }
            return Ok(Mode::Standalone);
        }
        if participants == 0 {
            return Err(err("an ensemble needs at least one participant".into()));
        }
        let myid_file = data_dir.join("myid");
        let text = std::fs::read_to_string(&myid_file).map_err(|e| {
            err(format!(
                "its server.N lines make this an ensemble member, so {} must hold its id: {e}",
                myid_file.display()
            ))
        })?;
        let id: u64 = text.trim().parse().map_err(|_| {
            err(format!(
                "{}: expected a server id, got {:?}",
                myid_file.display(),
                text.trim()
            ))
        })?;
        if !(1..=255).contains(&id) {
            return Err(err(format!(
                "server id {id}: herd's session ids carry it in their top byte, so ids are 1 to 255"
            )));
        }
        let Some(me) = self.servers.get(&id) else {
            let ids: Vec<String> = self.servers.keys().map(u64::to_string).collect();
            return Err(err(format!(
                "myid is {id}, which is not among the servers ({})",
                ids.join(", ")
            )));
        };
        if me.observer != self.observer {
            return Err(err(format!(
                "peerType={} but server.{id} is {}",
                if self.observer {
                    "observer"
                } else {
                    "participant"
                },
                if me.observer {
                    "an observer"
                } else {
                    "a participant"
                }
            )));
        }
        if let Some(bad) = self.servers.keys().find(|&&s| !(1..=255).contains(&s)) {
            return Err(err(format!("server id {bad}: ids are 1 to 255")));
        }
        Ok(Mode::Member {
            id,
            members: self.servers.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u64, host: &str, ports: (u16, u16), observer: bool) -> ServerLine {
        ServerLine {
            id,
            host: host.into(),
            quorum_port: ports.0,
            election_port: ports.1,
            observer,
            client: None,
        }
    }

    #[test]
    fn server_lines_as_zookeeper_writes_them() {
        // (id, value, parsed, why)
        let with_client = |mut l: ServerLine, a: Option<&str>, p| {
            l.client = Some((a.map(str::to_owned), p));
            l
        };
        let cases = [
            (
                "1",
                "zk1:2888:3888",
                line(1, "zk1", (2888, 3888), false),
                "the classic form",
            ),
            (
                "2",
                "127.0.0.2:2888:3888:participant",
                line(2, "127.0.0.2", (2888, 3888), false),
                "an explicit participant",
            ),
            (
                "4",
                "zk4:2888:3888:observer",
                line(4, "zk4", (2888, 3888), true),
                "an observer",
            ),
            (
                "3",
                "[::1]:2888:3888;2181",
                with_client(line(3, "::1", (2888, 3888), false), None, 2181),
                "IPv6, and a client port",
            ),
            (
                "5",
                "zk5:2888:3888:observer;0.0.0.0:2181",
                with_client(line(5, "zk5", (2888, 3888), true), Some("0.0.0.0"), 2181),
                "3.5's client address",
            ),
        ];
        for (id, value, expected, why) in cases {
            assert_eq!(parse_server_line(id, value), Ok(expected), "{why}");
        }
    }

    #[test]
    fn bad_server_lines_say_what_is_wrong() {
        let cases = [
            ("x", "zk1:2888:3888", "server id \"x\" is not a number"),
            ("1", "zk1", "expected host:quorumPort:electionPort"),
            (
                "1",
                "zk1:2888",
                "expected host:quorumPort:electionPort, no election port",
            ),
            ("1", "zk1:2888:http", "election port \"http\" is not a port"),
            (
                "1",
                "zk1:2888:2888",
                "the quorum and election ports must differ",
            ),
            (
                "1",
                "zk1:2888:3888:leader",
                "\"leader\": expected participant or observer",
            ),
            (
                "1",
                "zk1:2888:3888;port",
                "client port \"port\" is not a port",
            ),
            ("1", "[::1:2888:3888", "an unclosed [ in the address"),
            ("1", ":2888:3888", "no host"),
        ];
        for (id, value, message) in cases {
            assert_eq!(
                parse_server_line(id, value),
                Err(message.to_owned()),
                "{value}"
            );
        }
    }

    fn ensemble(lines: &[ServerLine]) -> EnsembleConfig {
        EnsembleConfig {
            servers: lines.iter().map(|l| (l.id, l.clone())).collect(),
            ..EnsembleConfig::default()
        }
    }

    #[test]
    fn the_mode_a_configuration_starts() {
        let dir = std::env::temp_dir().join(format!("herd-myid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let three = ensemble(&[
            line(1, "a", (1, 2), false),
            line(2, "b", (1, 2), false),
            line(3, "c", (1, 2), true),
        ]);
        let mode = |e: &EnsembleConfig, myid: Option<&str>| {
            match myid {
                Some(text) => std::fs::write(dir.join("myid"), text).unwrap(),
                None => {
                    let _ = std::fs::remove_file(dir.join("myid"));
                }
            }
            e.mode(&dir, "zoo.cfg")
        };
        assert_eq!(
            mode(&EnsembleConfig::default(), None),
            Ok(Mode::Standalone),
            "no lines"
        );
        let one = ensemble(&[line(1, "a", (1, 2), false)]);
        assert_eq!(
            mode(&one, None),
            Ok(Mode::Standalone),
            "one line: standalone"
        );
        let strict = EnsembleConfig {
            standalone_enabled: false,
            ..one.clone()
        };
        assert_eq!(
            mode(&strict, Some("1\n")),
            Ok(Mode::Member { id: 1, members: 1 }),
            "one line without standaloneEnabled: an ensemble of one"
        );
        assert_eq!(
            mode(&three, Some("2\n")),
            Ok(Mode::Member { id: 2, members: 3 })
        );
        let err = mode(&three, None).unwrap_err();
        assert!(
            err.starts_with("zoo.cfg: its server.N lines make this"),
            "{err}"
        );
        assert!(err.contains("myid must hold its id"), "{err}");
        let err = mode(&three, Some("7")).unwrap_err();
        assert_eq!(
            err,
            "zoo.cfg: myid is 7, which is not among the servers (1, 2, 3)"
        );
        let err = mode(&three, Some("two")).unwrap_err();
        assert!(err.ends_with("expected a server id, got \"two\""), "{err}");
        let err = mode(&three, Some("3")).unwrap_err();
        assert_eq!(
            err,
            "zoo.cfg: peerType=participant but server.3 is an observer"
        );
        let observers = ensemble(&[line(1, "a", (1, 2), true), line(2, "b", (1, 2), true)]);
        let err = mode(&observers, Some("1")).unwrap_err();
        assert_eq!(err, "zoo.cfg: an ensemble needs at least one participant");
        let big = ensemble(&[line(1, "a", (1, 2), false), line(300, "b", (1, 2), false)]);
        let err = mode(&big, Some("300")).unwrap_err();
        assert!(err.contains("ids are 1 to 255"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
