//! ZooKeeper paths: validation (`PathUtils.validatePath`) and splitting.
//!
//! A valid path is absolute, has no empty, `.` or `..` components, no trailing
//! slash (except the root `/`), and none of the characters ZooKeeper rejects:
//! NUL, control characters, U+007F..U+009F, U+D800..U+F8FF, U+FFF0..U+FFFF and
//! anything outside the Basic Multilingual Plane (a surrogate pair in Java).

use crate::error::{ErrorCode, ZkResult};

/// Checks `path` the way ZooKeeper does; `BadArguments` when it is not valid.
pub fn validate(path: &str) -> ZkResult<()> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(ErrorCode::BadArguments);
    }
    if path.len() == 1 {
        return Ok(());
    }
    if bytes[bytes.len() - 1] == b'/' {
        return Err(ErrorCode::BadArguments);
    }
    if bytes[1..]
        .split(|&b| b == b'/')
        .any(|component| matches!(component, b"" | b"." | b".."))
    {
        return Err(ErrorCode::BadArguments);
    }
    // Most paths are ASCII, where only the control characters are invalid.
    let invalid = if path.is_ascii() {
        bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
    } else {
        path.chars().any(invalid_char)
    };
    if invalid {
        return Err(ErrorCode::BadArguments);
    }
    Ok(())
}

/// A character ZooKeeper rejects in a path.
pub fn invalid_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
        || c as u32 > 0xffff
}

/// The parent of a valid, non-root path: `/a/b` -> `/a`, `/a` -> `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// The last component of a valid path (empty for the root).
pub fn name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// Whether `path` is `ancestor` or lies below it.
pub fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// `/zookeeper` and everything below it: reserved for the server.
pub fn is_reserved(path: &str) -> bool {
    is_at_or_below(path, "/zookeeper")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_matches_zookeeper() {
        let cases = [
            ("/", true, "root"),
            ("/a", true, "one component"),
            ("/a/b.c/..d/.e", true, "dots inside names are fine"),
            ("", false, "empty"),
            ("a", false, "relative"),
            ("/a/", false, "trailing slash"),
            ("/a//b", false, "empty component"),
            ("/a/./b", false, "dot component"),
            ("/a/..", false, "dot-dot component"),
            ("/a\u{0}b", false, "NUL"),
            ("/a\u{1}b", false, "control character"),
            ("/a\u{85}", false, "C1 control"),
            ("/a\u{e000}", false, "private use"),
            ("/a\u{fffd}", false, "replacement character"),
            ("/a\u{1f600}", false, "outside the BMP"),
            ("/\u{e9}t\u{e9}", true, "accented letters"),
        ];
        for (path, ok, why) in cases {
            assert_eq!(validate(path).is_ok(), ok, "{why}: {path:?}");
        }
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b/c"), "c");
        assert_eq!(name("/"), "");
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/ab", "/"));
        assert!(is_reserved("/zookeeper/quota"));
        assert!(!is_reserved("/zookeeperx"));
    }
}
