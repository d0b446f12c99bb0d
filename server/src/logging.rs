//! herd's own log: one line per event on standard error,
//! `2026-12-03T07:47:32.123Z WARN  herd: message`, at four levels. The level is
//! `herd.logLevel` in zoo.cfg, overridden by the environment: `HERD_LOG_LEVEL`,
//! or the level part of ZooKeeper's `ZOO_LOG4J_PROP` (`WARN,CONSOLE`), so a
//! ZooKeeper service definition keeps working. Default: INFO.
//!
//! Writing is one `write` of a whole line on stderr (unbuffered), so lines from
//! different threads never interleave. Shard threads log nothing on the request
//! path: only start-up, storage, ensemble and fault events are logged.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// How much is logged: a level logs itself and everything more severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    /// A level by log4j's names (any case; `WARNING` too).
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_uppercase().as_str() {
            "ERROR" | "FATAL" => Some(Level::Error),
            "WARN" | "WARNING" => Some(Level::Warn),
            "INFO" => Some(Level::Info),
            "DEBUG" | "TRACE" => Some(Level::Debug),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// The level from the environment if it names one, else `configured`.
pub fn level_from(configured: Level, env: impl Fn(&str) -> Option<String>) -> Level {
    env("HERD_LOG_LEVEL")
        .and_then(|v| Level::parse(&v))
        .or_else(|| env("ZOO_LOG4J_PROP").and_then(|v| Level::parse(v.split(',').next()?)))
        .unwrap_or(configured)
}

/// Sets the level of the whole process.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Relaxed);
}

/// Whether `level` is logged.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Relaxed)
}

/// `message` as one log line, stamped `now_ms` (milliseconds since the epoch).
pub fn line(level: Level, now_ms: i64, message: fmt::Arguments) -> String {
    format!(
        "{} {:<5} herd: {message}\n",
        engine::time::iso8601_utc(now_ms),
        level.name()
    )
}

/// Writes `message` if `level` is logged. Use the macros ([`crate::warn!`], ...).
pub fn emit(level: Level, message: fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let _ = std::io::stderr().write_all(line(level, now_ms, message).as_bytes());
}

/// Logs at ERROR.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::logging::emit($crate::logging::Level::Error, format_args!($($arg)*)) };
}

/// Logs at WARN.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::logging::emit($crate::logging::Level::Warn, format_args!($($arg)*)) };
}

/// Logs at INFO.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::logging::emit($crate::logging::Level::Info, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_by_log4js_names() {
        for (text, level) in [
            ("ERROR", Some(Level::Error)),
            ("fatal", Some(Level::Error)),
            ("warn", Some(Level::Warn)),
            ("WARNING", Some(Level::Warn)),
            (" Info ", Some(Level::Info)),
            ("TRACE", Some(Level::Debug)),
            ("loud", None),
        ] {
            assert_eq!(Level::parse(text), level, "{text}");
        }
    }

    #[test]
    fn the_environment_overrides_the_configuration() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(level_from(Level::Info, env(&[])), Level::Info);
        assert_eq!(
            level_from(Level::Info, env(&[("ZOO_LOG4J_PROP", "WARN,CONSOLE")])),
            Level::Warn
        );
        assert_eq!(
            level_from(
                Level::Info,
                env(&[
                    ("ZOO_LOG4J_PROP", "WARN,CONSOLE"),
                    ("HERD_LOG_LEVEL", "debug")
                ])
            ),
            Level::Debug,
            "herd's own variable first"
        );
        assert_eq!(
            level_from(Level::Error, env(&[("HERD_LOG_LEVEL", "nonsense")])),
            Level::Error,
            "a variable that names no level is ignored"
        );
    }

    #[test]
    fn a_line_is_stamped_leveled_and_whole() {
        let l = line(
            Level::Warn,
            1_796_283_002_688,
            format_args!("fsync took {}ms", 1200),
        );
        assert_eq!(
            l,
            "2026-12-03T07:30:02.688Z WARN  herd: fsync took 1200ms\n"
        );
    }
}
