//! `herd`: a standalone server. No arguments: client port 2181 on 127.0.0.1, data
//! under ./herd-data. `--config zoo.cfg` reads ZooKeeper's configuration keys;
//! `--port N` and `--shards N` override them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use herd_server::logging::{level_from, set_level};
use herd_server::{Config, Server};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: herd [--config zoo.cfg] [--port N] [--shards N]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            herd_server::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = Config::default();
    set_level(level_from(config.log_level, |k| std::env::var(k).ok()));
    let mut args = std::env::args().skip(1);
    let mut overrides = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--config" => {
                let file = PathBuf::from(value()?);
                let (parsed, warnings) = Config::from_file(&file).map_err(|e| e.to_string())?;
                config = parsed;
                set_level(level_from(config.log_level, |k| std::env::var(k).ok()));
                for w in warnings {
                    herd_server::warn!("{w}");
                }
            }
            "--port" | "--shards" => overrides.push((arg.clone(), value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    for (flag, v) in overrides {
        let n: usize = v
            .parse()
            .map_err(|_| format!("{flag}: expected a number, got {v:?}"))?;
        match flag.as_str() {
            "--port" => {
                config.client_port =
                    u16::try_from(n).map_err(|_| format!("--port: {n} is not a port"))?
            }
            _ => config.shards = n.max(1),
        }
    }
    let shards = config.shards;
    let commands = config.admin.as_ref().map(|a| a.command_url.clone());
    let server = Server::start(config).map_err(|e| format!("cannot start: {e}"))?;
    // Where it serves, a line each on stdout. Whoever started herd may have
    // closed its end after the first line: a failed write must not stop a
    // running server, so errors are ignored (println! would panic).
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "herd serving ZooKeeper clients on {} with {shards} shards",
        server.client_addr()
    );
    if let Some(addr) = server.metrics_addr() {
        let _ = writeln!(
            out,
            "herd serving Prometheus metrics on http://{addr}/metrics"
        );
    }
    if let (Some(addr), Some(url)) = (server.admin_addr(), commands) {
        let _ = writeln!(out, "herd serving the AdminServer on http://{addr}{url}");
    }
    let _ = out.flush();
    server.wait();
    Ok(())
}
