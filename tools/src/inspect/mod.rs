//! `herd-inspect`: read a herd transaction log or snapshot without starting herd.
//!
//! ```text
//!  log FILE ──► engine::log::scan ──► decode_payload ──► one line per record + ending
//!  verify DIR ─► read_dir ─► check (herd's start-up rules) ─► per-file lines, exit 0/1/2
//!  summary DIR ► read_dir ─► check ─► engine::txn::replay ─► DataTree ─► describe
//!  snapshot FILE ► engine::snapshot::load ─► DataTree ─► describe [+ nodes], exit 0/1
//!  import-zk ZK HERD ► ZooKeeper's snapshot + logs ─► DataTree ─► a herd snapshot
//!  export-zk HERD ZK ► herd's start-up (snapshot + log) ─► a ZooKeeper snapshot
//! ```
//!
//! Everything but [`check::read_dir`] and the file reads in [`run`] is pure, so the
//! tests feed segments built in memory with `engine::log::encode_record` and
//! snapshots with `engine::snapshot::encode`.

pub mod check;
pub mod dump;
pub mod migrate;
pub mod snapshot;
pub mod summary;

use std::io::Write;
use std::path::Path;

use engine::tree::DataTree;
use engine::Zxid;

/// Exit status when the tool could not do its job: bad arguments, an unreadable
/// file or directory.
pub const EXIT_USAGE: u8 = 3;

pub const HELP: &str = "\
herd-inspect: read a herd transaction log or snapshot without starting herd

usage:
  herd-inspect log FILE              dump one segment: a line per record, then how it ends
  herd-inspect verify DIR            check every log.* segment of a data directory
  herd-inspect summary DIR [--top N] replay the log and describe the tree (N largest nodes,
                                     default 10)
  herd-inspect snapshot FILE [--nodes] [--top N]
                                     check a snapshot.* file as herd loads it and describe
                                     its tree; --nodes adds a line per node
  herd-inspect import-zk ZK_DATADIR HERD_DATADIR [--zk-log-dir DIR]
                                     write Apache ZooKeeper's database (its newest
                                     snapshot and the logs after it; logs in ZK_DATADIR
                                     unless --zk-log-dir) as a herd snapshot in the empty
                                     HERD_DATADIR; stop ZooKeeper first
  herd-inspect export-zk HERD_DATADIR ZK_DATADIR [--herd-log-dir DIR]
                                     write a stopped standalone herd's database as a
                                     ZooKeeper snapshot in ZK_DATADIR/version-2 (empty),
                                     which ZooKeeper 3.4 to 3.9 start from

log lines: zxid, time (UTC), session (createSession, closeSession, ephemeral create),
type (createSession closeSession create delete setData setACL check multi(n) error(code)),
path(s); a multi lists its parts as type:path.

snapshot --nodes lines: path, len (data bytes), version, czxid, mzxid, owner (ephemeral
owner session, 0x0 if none); containers and TTL nodes end in container or ttl=<ms>ms.

exit status:
  0  clean: every segment is whole and zxids run on without gaps
  1  damaged: herd would refuse to start (corruption with valid records after it, a
     zxid gap, a foreign database id, a bad header or payload, a torn tail in an older
     segment); `log` also exits 1 when FILE is not a herd log segment, `snapshot`
     when FILE fails herd's checks (header, checksum, archive), which makes herd
     skip it and load an older snapshot
  2  repairable: the newest segment ends in a torn tail, which herd drops on start
  3  could not run: bad arguments, unreadable file or directory
`log` exits 0 once it has printed the dump, whatever the segment's ending (shown in
its summary line); `verify` and `summary` exit by the status of the whole log;
`snapshot` exits 0 when herd would load FILE; `import-zk` and `export-zk` exit 0
once the snapshot is written, 3 otherwise.
";

/// Runs `herd-inspect` with `args` (program name excluded), writing the report to
/// `out` and errors to `err`. Returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match execute(args, out) {
        Ok(code) => code,
        Err(why) => {
            let _ = writeln!(err, "herd-inspect: {why}");
            EXIT_USAGE
        }
    }
}

fn execute(args: &[String], out: &mut dyn Write) -> Result<u8, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let usage = |why: &str| format!("{why}\n{HELP}");
    let write_lines = |out: &mut dyn Write, lines: &[String]| -> Result<(), String> {
        for line in lines {
            writeln!(out, "{line}").map_err(|e| format!("writing output: {e}"))?;
        }
        Ok(())
    };
    match args.as_slice() {
        [] => Err(usage("missing command")),
        ["-h" | "--help" | "help", ..] => {
            write!(out, "{HELP}").map_err(|e| e.to_string())?;
            Ok(0)
        }
        ["log", file] => {
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            match dump::dump(&bytes) {
                Ok(d) => {
                    write_lines(out, &d.lines)?;
                    write_lines(out, &[d.summary])?;
                    Ok(0)
                }
                Err(e) => {
                    write_lines(out, &[format!("{file}: {e}")])?;
                    Ok(check::Severity::Damaged.exit_code())
                }
            }
        }
        ["verify", dir] => {
            let (segments, db_id, ignored) = read(dir)?;
            let (_, base, skipped) = newest_snapshot(dir)?;
            let report = check::check(&segments, &db_id, base, |_, _| {});
            write_lines(out, &ignored)?;
            write_lines(out, &skipped)?;
            write_lines(out, &report.lines())?;
            Ok(report.severity.exit_code())
        }
        ["summary", dir, rest @ ..] => {
            let (top, _) = options(rest, false).map_err(|why| usage(&why))?;
            let (segments, db_id, ignored) = read(dir)?;
            let (tree, base, skipped) = newest_snapshot(dir)?;
            let s = summary::summarize(&segments, &db_id, Some((base, tree)), top);
            write_lines(out, &ignored)?;
            write_lines(out, &skipped)?;
            write_lines(out, &s.lines())?;
            Ok(s.report.severity.exit_code())
        }
        ["snapshot", file, rest @ ..] => {
            let (top, list_nodes) = options(rest, true).map_err(|why| usage(&why))?;
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            match snapshot::lines(&bytes, top, list_nodes) {
                Ok(lines) => {
                    write_lines(out, &lines)?;
                    Ok(0)
                }
                Err(e) => {
                    write_lines(out, &[format!("{file}: {e}")])?;
                    Ok(check::Severity::Damaged.exit_code())
                }
            }
        }
        ["import-zk", zk, herd, rest @ ..] => {
            let zk_log = log_dir(rest, "--zk-log-dir", zk).map_err(|why| usage(&why))?;
            let lines = migrate::import_zk(Path::new(zk), Path::new(zk_log), Path::new(herd))?;
            write_lines(out, &lines)?;
            Ok(0)
        }
        ["export-zk", herd, zk, rest @ ..] => {
            let herd_log = log_dir(rest, "--herd-log-dir", herd).map_err(|why| usage(&why))?;
            let lines = migrate::export_zk(Path::new(herd), Path::new(herd_log), Path::new(zk))?;
            write_lines(out, &lines)?;
            Ok(0)
        }
        [cmd, ..] => Err(usage(&format!("unknown command or arguments for {cmd:?}"))),
    }
}

/// The options after `summary DIR` or `snapshot FILE`: `--top N` (default
/// [`summary::TOP_DEFAULT`]) and, where `nodes_allowed`, whether `--nodes` is given.
fn options(mut rest: &[&str], nodes_allowed: bool) -> Result<(usize, bool), String> {
    let (mut top, mut nodes) = (summary::TOP_DEFAULT, false);
    loop {
        rest = match rest {
            [] => return Ok((top, nodes)),
            ["--top", n, more @ ..] => {
                top = n
                    .parse()
                    .map_err(|_| format!("--top: expected a number, got {n:?}"))?;
                more
            }
            ["--nodes", more @ ..] if nodes_allowed => {
                nodes = true;
                more
            }
            [arg, ..] => return Err(format!("unexpected argument {arg:?}")),
        };
    }
}

/// The log directory `flag` names in `rest`, else `data_dir`.
fn log_dir<'a>(rest: &[&'a str], flag: &str, data_dir: &'a str) -> Result<&'a str, String> {
    match rest {
        [] => Ok(data_dir),
        [f, dir] if *f == flag => Ok(dir),
        [arg, ..] => Err(format!("unexpected argument {arg:?}")),
    }
}

/// The newest snapshot in `dir` that validates, loaded as herd's start-up
/// loads it (an initial tree at zxid 0 without one), and a line for each newer
/// one it skipped.
fn newest_snapshot(dir: &str) -> Result<(DataTree, Zxid, Vec<String>), String> {
    let mut skipped = Vec::new();
    let (tree, zxid) = herd_server::storage::load_snapshot(Path::new(dir), &mut skipped)
        .map_err(|e| e.to_string())?;
    Ok((tree, zxid, skipped))
}

/// The directory's segments and `herd.dbid`, plus a note per ignored `log.*` file.
fn read(dir: &str) -> Result<(Vec<check::Segment>, check::DbIdFile, Vec<String>), String> {
    let (segments, db_id, ignored) =
        check::read_dir(Path::new(dir)).map_err(|e| format!("{dir}: {e}"))?;
    let notes = ignored
        .into_iter()
        .map(|name| format!("note: {name}: not named log.<hex zxid>, herd ignores it"))
        .collect();
    Ok((segments, db_id, notes))
}
