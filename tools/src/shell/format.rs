//! zkCli's text, byte for byte: stat blocks, ACLs, watch events and the messages
//! of `KeeperException`s as zkCli's `CliWrapperException` words them. Pure.

use engine::acl::{perms, Acl, Id};
use engine::path;
use engine::stat::Stat;
use engine::ErrorCode;

use super::client::{event, state, WatchedEvent};
use engine::time::java_date_utc;

/// The stat block zkCli prints (`StatPrinter`), one line per field.
pub fn stat_lines(s: &Stat) -> Vec<String> {
    vec![
        format!("cZxid = 0x{:x}", s.czxid),
        format!("ctime = {}", java_date_utc(s.ctime)),
        format!("mZxid = 0x{:x}", s.mzxid),
        format!("mtime = {}", java_date_utc(s.mtime)),
        format!("pZxid = 0x{:x}", s.pzxid),
        format!("cversion = {}", s.cversion),
        format!("dataVersion = {}", s.version),
        format!("aclVersion = {}", s.aversion),
        format!("ephemeralOwner = 0x{:x}", s.ephemeral_owner),
        format!("dataLength = {}", s.data_length),
        format!("numChildren = {}", s.num_children),
    ]
}

/// Permission letters in zkCli's order (`cdrwa`).
pub fn perm_string(p: i32) -> String {
    [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| p & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// `getAcl`'s two lines per entry: `'scheme,'id` and `: perms`.
pub fn acl_lines(acl: &[Acl]) -> Vec<String> {
    acl.iter()
        .flat_map(|a| {
            [
                format!("'{},'{}", a.id.scheme, a.id.id),
                format!(": {}", perm_string(a.perms)),
            ]
        })
        .collect()
}

/// Parses zkCli's ACL argument: `scheme:id:perms[,scheme:id:perms...]`, the id
/// being everything between the first and the last colon (a digest id has one).
pub fn parse_acl(text: &str) -> Result<Vec<Acl>, String> {
    text.split(',')
        .map(|entry| {
            let bad = || format!("{entry} does not have the form scheme:id:perm");
            let (scheme, rest) = entry.split_once(':').ok_or_else(bad)?;
            let (id, letters) = rest.rsplit_once(':').ok_or_else(bad)?;
            let mut p = 0;
            for c in letters.chars() {
                p |= match c {
                    'c' => perms::CREATE,
                    'd' => perms::DELETE,
                    'r' => perms::READ,
                    'w' => perms::WRITE,
                    'a' => perms::ADMIN,
                    _ => return Err(format!("Unknown perm type: {c}")),
                };
            }
            Ok(Acl {
                perms: p,
                id: Id::new(scheme, id),
            })
        })
        .collect()
}

/// `KeeperException.getCodeMessage`.
pub fn code_message(code: ErrorCode) -> &'static str {
    use ErrorCode as E;
    match code {
        E::Ok => "ok",
        E::SystemError => "SystemError",
        E::RuntimeInconsistency => "RuntimeInconsistency",
        E::DataInconsistency => "DataInconsistency",
        E::ConnectionLoss => "ConnectionLoss",
        E::MarshallingError => "MarshallingError",
        E::Unimplemented => "Unimplemented",
        E::OperationTimeout => "OperationTimeout",
        E::BadArguments => "BadArguments",
        E::UnknownSession => "Unknown session",
        E::NewConfigNoQuorum => "NewConfigNoQuorum",
        E::ReconfigInProgress => "ReconfigInProgress",
        E::ApiError => "APIError",
        E::NoNode => "NoNode",
        E::NoAuth => "NoAuth",
        E::BadVersion => "BadVersion",
        E::NoChildrenForEphemerals => "NoChildrenForEphemerals",
        E::NodeExists => "NodeExists",
        E::NotEmpty => "Directory not empty",
        E::SessionExpired => "Session expired",
        E::InvalidCallback => "Invalid callback",
        E::InvalidAcl => "InvalidACL",
        E::AuthFailed => "AuthFailed",
        E::SessionMoved => "Session moved",
        E::NotReadOnly => "Not a read-only call",
        E::EphemeralOnLocalSession => "Ephemeral node on local session",
        E::NoWatcher => "No such watcher",
        E::RequestTimeout => "Request timeout",
        E::ReconfigDisabled => "Reconfig is disabled",
        E::SessionClosedRequireSaslAuth => "Session closed because client failed to authenticate",
        E::QuotaExceeded => "Quota has exceeded",
        E::ThrottledOp => "Op throttled due to high load",
    }
}

/// The line zkCli prints for a failed operation on `path`
/// (`CliWrapperException`), e.g. `Node does not exist: /p`.
pub fn error_line(code: ErrorCode, path: Option<&str>) -> String {
    let p = path.unwrap_or("null");
    match code {
        ErrorCode::NoNode => format!("Node does not exist: {p}"),
        ErrorCode::NoAuth => format!("Insufficient permission : {p}"),
        ErrorCode::NotEmpty => format!("Node not empty: {p}"),
        ErrorCode::NodeExists => format!("Node already exists: {p}"),
        ErrorCode::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        ErrorCode::BadVersion => format!("version No is not valid : {p}"),
        ErrorCode::AuthFailed => format!("Authentication is not valid : {p}"),
        ErrorCode::BadArguments => format!("Arguments are not valid : {p}"),
        ErrorCode::InvalidAcl => format!("Acl is not valid : {p}"),
        _ => match path {
            Some(p) => format!("KeeperErrorCode = {} for {p}", code_message(code)),
            None => format!("KeeperErrorCode = {}", code_message(code)),
        },
    }
}

fn state_name(s: i32) -> String {
    match s {
        -1 => "Unknown".into(),
        state::DISCONNECTED => "Disconnected".into(),
        1 => "NoSyncConnected".into(),
        state::SYNC_CONNECTED => "SyncConnected".into(),
        state::AUTH_FAILED => "AuthFailed".into(),
        5 => "ConnectedReadOnly".into(),
        6 => "SaslAuthenticated".into(),
        state::CLOSED => "Closed".into(),
        state::EXPIRED => "Expired".into(),
        other => format!("Unknown({other})"),
    }
}

fn event_name(kind: i32) -> String {
    match kind {
        event::NONE => "None".into(),
        event::NODE_CREATED => "NodeCreated".into(),
        event::NODE_DELETED => "NodeDeleted".into(),
        event::NODE_DATA_CHANGED => "NodeDataChanged".into(),
        event::NODE_CHILDREN_CHANGED => "NodeChildrenChanged".into(),
        event::DATA_WATCH_REMOVED => "DataWatchRemoved".into(),
        event::CHILD_WATCH_REMOVED => "ChildWatchRemoved".into(),
        event::PERSISTENT_WATCH_REMOVED => "PersistentWatchRemoved".into(),
        other => format!("Unknown({other})"),
    }
}

/// `WatchedEvent.toString()`.
pub fn event_text(e: &WatchedEvent) -> String {
    format!(
        "WatchedEvent state:{} type:{} path:{}",
        state_name(e.state),
        event_name(e.kind),
        e.path.as_deref().unwrap_or("null")
    )
}

/// What zkCli's default watcher prints for an event: an empty line,
/// `WATCHER::`, an empty line, the event.
pub fn watcher_text(e: &WatchedEvent) -> String {
    format!("\nWATCHER::\n\n{}\n", event_text(e))
}

/// ZooKeeper's client-side path check (`PathUtils.validatePath`); a sequential
/// create may end in `/`.
pub fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    let checked = if sequential {
        path.strip_suffix('/')
            .map_or(path, |p| if p.is_empty() { path } else { p })
    } else {
        path
    };
    if !sequential && path.ends_with('/') {
        return Err("Path must not end with / character".into());
    }
    let invalid = |why: String| Err(format!("Invalid path string \"{path}\" caused by {why}"));
    let mut at = 1;
    for name in checked[1..].split('/') {
        match name {
            "" => return invalid(format!("empty node name specified @{at}")),
            // ZooKeeper names the position of the last dot.
            "." | ".." => {
                return invalid(format!(
                    "relative paths not allowed @{}",
                    at + name.len() - 1
                ))
            }
            _ => {}
        }
        if let Some(i) = name.find(path::invalid_char) {
            return invalid(format!("invalid character @{}", at + i));
        }
        at += name.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_block_fields_in_zkclis_order() {
        let s = Stat {
            czxid: 0x2,
            mzxid: 0xa,
            ctime: 0,
            mtime: 1_795_315_613_000,
            version: 1,
            cversion: 2,
            aversion: 3,
            ephemeral_owner: i64::MIN,
            data_length: 5,
            num_children: 4,
            pzxid: 0x1f,
        };
        assert_eq!(
            stat_lines(&s),
            [
                "cZxid = 0x2",
                "ctime = Thu Jan 01 00:00:00 UTC 1970",
                "mZxid = 0xa",
                "mtime = Sun Nov 22 02:46:53 UTC 2026",
                "pZxid = 0x1f",
                "cversion = 2",
                "dataVersion = 1",
                "aclVersion = 3",
                "ephemeralOwner = 0x8000000000000000",
                "dataLength = 5",
                "numChildren = 4",
            ]
        );
    }

    #[test]
    fn acl_text_round_trip() {
        let acl = parse_acl("world:anyone:cdrwa,digest:bob:x/Y=:r,ip:10.0.0.0/8:wa").unwrap();
        assert_eq!(
            acl_lines(&acl),
            [
                "'world,'anyone",
                ": cdrwa",
                "'digest,'bob:x/Y=",
                ": r",
                "'ip,'10.0.0.0/8",
                ": wa"
            ]
        );
        assert_eq!(
            parse_acl("foo"),
            Err("foo does not have the form scheme:id:perm".into())
        );
        assert_eq!(
            parse_acl("world:anyone:rx"),
            Err("Unknown perm type: x".into())
        );
    }

    /// One row per case: code, path, line, why.
    #[test]
    fn error_lines() {
        let rows = [
            (
                ErrorCode::NoNode,
                "Node does not exist: /p",
                "zkCli's own wording",
            ),
            (ErrorCode::NodeExists, "Node already exists: /p", "ditto"),
            (ErrorCode::NotEmpty, "Node not empty: /p", "ditto"),
            (
                ErrorCode::BadVersion,
                "version No is not valid : /p",
                "space before colon",
            ),
            (
                ErrorCode::NoAuth,
                "Insufficient permission : /p",
                "space before colon",
            ),
            (
                ErrorCode::NoWatcher,
                "KeeperErrorCode = No such watcher for /p",
                "other codes: KeeperException's message",
            ),
        ];
        for (code, line, why) in rows {
            assert_eq!(error_line(code, Some("/p")), line, "{why}");
        }
    }

    #[test]
    fn paths() {
        let rows: [(&str, bool, Result<(), &str>); 9] = [
            ("/", false, Ok(())),
            ("/a/b", false, Ok(())),
            ("a", false, Err("Path must start with / character")),
            ("/a/", false, Err("Path must not end with / character")),
            ("/a/", true, Ok(())),
            (
                "/a//b",
                false,
                Err("Invalid path string \"/a//b\" caused by empty node name specified @3"),
            ),
            (
                "/a/../b",
                false,
                Err("Invalid path string \"/a/../b\" caused by relative paths not allowed @4"),
            ),
            ("", false, Err("Path length must be > 0")),
            // Outside the Basic Multilingual Plane: a surrogate pair in Java.
            (
                "/a\u{1f600}",
                false,
                Err("Invalid path string \"/a\u{1f600}\" caused by invalid character @2"),
            ),
        ];
        for (path, seq, want) in rows {
            assert_eq!(
                validate_path(path, seq),
                want.map_err(String::from),
                "{path}"
            );
        }
    }

    #[test]
    fn events() {
        let e = WatchedEvent {
            state: state::SYNC_CONNECTED,
            kind: event::NODE_DATA_CHANGED,
            path: Some("/x".into()),
        };
        assert_eq!(
            watcher_text(&e),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/x\n"
        );
        assert_eq!(
            event_text(&WatchedEvent::session(state::CLOSED)),
            "WatchedEvent state:Closed type:None path:null"
        );
    }
}
