//! Command lines as zkCli reads them: words split on blanks with `"..."` and
//! `'...'` quoting, then options parsed anywhere in the line (Commons CLI's
//! `PosixParser`, so `removewatches /a -d` works), checked against each
//! command's table row. Pure.

/// One command: its name, zkCli's usage text, its options and how many
/// positional arguments it takes.
pub struct Spec {
    pub name: &'static str,
    /// The usage line zkCli prints, without the name.
    pub usage: &'static str,
    /// Options without a value.
    pub flags: &'static str,
    /// Options that take a value.
    pub valued: &'static str,
    pub args_min: usize,
    pub args_max: usize,
    /// Whether the command needs a live session.
    pub needs_session: bool,
}

const fn spec(
    name: &'static str,
    usage: &'static str,
    flags: &'static str,
    valued: &'static str,
    args: (usize, usize),
    needs_session: bool,
) -> Spec {
    Spec {
        name,
        usage,
        flags,
        valued,
        args_min: args.0,
        args_max: args.1,
        needs_session,
    }
}

/// Every command herd-cli knows, in zkCli's (alphabetical) usage order.
pub const COMMANDS: &[Spec] = &[
    spec(
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
        "",
        "m",
        (1, 1),
        true,
    ),
    spec("addauth", "scheme auth", "", "", (1, 2), true),
    spec("close", "", "", "", (0, 0), false),
    spec("config", "[-c] [-w] [-s]", "cws", "", (0, 0), true),
    spec("connect", "host:port", "", "", (0, 1), false),
    spec(
        "create",
        "[-s] [-e] [-c] [-t ttl] path [data] [acl]",
        "sec",
        "t",
        (1, 3),
        true,
    ),
    spec("delete", "[-v version] path", "", "v", (1, 1), true),
    spec("deleteall", "path [-b batch size]", "", "b", (1, 1), true),
    spec("get", "[-s] [-w] path", "sw", "", (1, 1), true),
    spec("getAcl", "[-s] path", "s", "", (1, 1), true),
    spec("getAllChildrenNumber", "path", "", "", (1, 1), true),
    spec("getEphemerals", "path", "", "", (0, 1), true),
    spec("history", "", "", "", (0, 0), false),
    spec("ls", "[-s] [-w] [-R] path", "swR", "", (1, 1), true),
    spec("printwatches", "on|off", "", "", (0, 1), false),
    spec("quit", "", "", "", (0, 0), false),
    spec("redo", "cmdno", "", "", (1, 1), false),
    spec("removewatches", "path [-c|-d|-a] [-l]", "cdal", "", (1, 1), true),
    spec("set", "[-s] [-v version] path data", "s", "v", (2, 2), true),
    spec("setAcl", "[-s] [-v version] [-R] path acl", "sR", "v", (2, 2), true),
    spec("stat", "[-w] path", "w", "", (1, 1), true),
    spec("sync", "path", "", "", (1, 1), true),
    spec("whoami", "", "", "", (0, 0), true),
];

/// The row for `name`.
pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.name == name)
}

/// `name usage`, as zkCli prints it for a malformed command.
pub fn usage_line(spec: &Spec) -> String {
    format!("{} {}", spec.name, spec.usage)
}

/// The full command list printed for an unknown command.
pub fn usage_all() -> String {
    let mut text = String::from("herd-cli -server host:port [-timeout ms] cmd args\n");
    for s in COMMANDS {
        text.push_str(&format!("\t{}\n", usage_line(s)));
    }
    text
}

/// Splits a command line into words; quotes group blanks and are removed.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return words;
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            for c in chars.by_ref() {
                if c == first {
                    break;
                }
                word.push(c);
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// A command line checked against its [`Spec`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub flags: Vec<char>,
    pub values: Vec<(char, String)>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, flag: char) -> bool {
        self.flags.contains(&flag)
    }

    pub fn value(&self, option: char) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(o, _)| *o == option)
            .map(|(_, v)| v.as_str())
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
}

/// Why a command line does not fit its command.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgError {
    UnknownOption(String),
    MissingValue(char),
    /// Too few or too many positional arguments.
    Arity,
}

/// Parses `words` (the words after the command name). A word starting with `-`
/// and longer than one character is an option, as in zkCli; `--` ends options.
/// Flags may be bundled (`-es`).
pub fn parse(spec: &Spec, words: &[String]) -> Result<Parsed, ArgError> {
    let mut parsed = Parsed::default();
    let mut words = words.iter();
    let mut options_done = false;
    while let Some(word) = words.next() {
        if options_done || !word.starts_with('-') || word.len() == 1 {
            parsed.args.push(word.clone());
            continue;
        }
        if word == "--" {
            options_done = true;
            continue;
        }
        let letters: Vec<char> = word[1..].chars().collect();
        for (i, &c) in letters.iter().enumerate() {
            if spec.flags.contains(c) {
                parsed.flags.push(c);
            } else if spec.valued.contains(c) {
                // The value is the rest of the word (`-v3`) or the next word.
                let rest: String = letters[i + 1..].iter().collect();
                let value = if rest.is_empty() {
                    words.next().cloned().ok_or(ArgError::MissingValue(c))?
                } else {
                    rest
                };
                parsed.values.push((c, value));
                break;
            } else {
                return Err(ArgError::UnknownOption(format!("-{c}")));
            }
        }
    }
    if parsed.args.len() < spec.args_min || parsed.args.len() > spec.args_max {
        return Err(ArgError::Arity);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_words(s)
    }

    #[test]
    fn splitting() {
        assert_eq!(words("  ls   /a "), ["ls", "/a"]);
        assert_eq!(
            words("create /a \"hello world\" 'x y'"),
            ["create", "/a", "hello world", "x y"]
        );
        assert_eq!(words("set /a \"\""), ["set", "/a", ""]);
        assert!(words("   ").is_empty());
    }

    /// One row per case: command, words, expected outcome, why.
    #[test]
    fn option_parsing() {
        let ok = |flags: &str, values: &[(char, &str)], args: &[&str]| {
            Ok(Parsed {
                flags: flags.chars().collect(),
                values: values.iter().map(|(c, v)| (*c, v.to_string())).collect(),
                args: args.iter().map(|a| a.to_string()).collect(),
            })
        };
        let rows = [
            ("get", "-s -w /a", ok("sw", &[], &["/a"]), "flags"),
            (
                "get",
                "/a -s",
                ok("s", &[], &["/a"]),
                "options after the path",
            ),
            (
                "create",
                "-es /a d",
                ok("es", &[], &["/a", "d"]),
                "bundled flags",
            ),
            (
                "delete",
                "-v 3 /a",
                ok("", &[('v', "3")], &["/a"]),
                "a valued option",
            ),
            (
                "delete",
                "-v3 /a",
                ok("", &[('v', "3")], &["/a"]),
                "value in the same word",
            ),
            (
                "set",
                "/a -- -1",
                ok("", &[], &["/a", "-1"]),
                "-- ends options",
            ),
            (
                "set",
                "/a -",
                ok("", &[], &["/a", "-"]),
                "a lone dash is an argument",
            ),
            (
                "get",
                "-x /a",
                Err(ArgError::UnknownOption("-x".into())),
                "unknown option",
            ),
            (
                "delete",
                "/a -v",
                Err(ArgError::MissingValue('v')),
                "value missing",
            ),
            ("get", "", Err(ArgError::Arity), "path missing"),
            ("get", "/a /b", Err(ArgError::Arity), "too many arguments"),
        ];
        for (cmd, line, want, why) in rows {
            assert_eq!(parse(find(cmd).unwrap(), &words(line)), want, "{why}");
        }
    }
}
