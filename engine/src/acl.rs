//! Access control as ZooKeeper does it: ACL entries of (permissions, scheme:id),
//! the authentication schemes `world`, `auth`, `digest`, `ip` and the super user.
//!
//! A session carries a list of authenticated [`Id`]s: always `ip:<client address>`,
//! plus one `digest:user:hash` per successful `addauth digest`, plus `super:` when the
//! digest matches the configured super digest. An operation needing permission `p`
//! on a node is allowed when the session is super, or some ACL entry with `p` is
//! `world:anyone`, or matches one of the session's ids by the entry's scheme.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;

use crate::error::{ErrorCode, ZkResult};

/// Permission bits (`ZooDefs.Perms`).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// An identity: `scheme:id`, e.g. `digest:bob:Lz4...=` or `ip:10.0.0.0/8`.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }
}

/// One ACL entry.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

/// An interned ACL list, shared by every node that has it. A thin pointer:
/// each stored znode holds one.
pub type AclList = Arc<Vec<Acl>>;

impl Acl {
    /// `world:anyone` with all permissions, ZooKeeper's `OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::new("world", "anyone"),
        }]
    }

    /// `world:anyone` read-only, as on `/zookeeper/config`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        }]
    }
}

/// `user:base64(sha1("user:password"))`, the id the digest scheme stores.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = sha1_smol::Sha1::from(user_password.as_bytes())
        .digest()
        .bytes();
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Whether the session with these ids may do `perm` on a node with `acl`.
pub fn check(acl: &[Acl], perm: i32, ids: &[Id]) -> ZkResult<()> {
    if acl.is_empty() || ids.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    for entry in acl.iter().filter(|a| a.perms & perm != 0) {
        if entry.id.scheme == "world" && entry.id.id == "anyone" {
            return Ok(());
        }
        if ids
            .iter()
            .any(|id| id.scheme == entry.id.scheme && matches(&entry.id, &id.id))
        {
            return Ok(());
        }
    }
    Err(ErrorCode::NoAuth)
}

/// Whether the authenticated id `auth` satisfies ACL id `entry` (same scheme).
fn matches(entry: &Id, auth: &str) -> bool {
    match entry.scheme.as_str() {
        "digest" => entry.id == auth,
        "ip" => ip_matches(&entry.id, auth),
        _ => false,
    }
}

/// Validates and expands an ACL list for create/setACL (`fixupACL`): duplicates
/// dropped, `auth` replaced by the session's authenticated ids, unknown schemes
/// and malformed ids rejected with `InvalidACL`.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> ZkResult<Vec<Acl>> {
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    for entry in acl {
        match entry.id.scheme.as_str() {
            "world" if entry.id.id == "anyone" => push(entry.clone()),
            "auth" => {
                let mut any = false;
                // Only schemes whose identities are "authenticated" expand: digest does, ip does not.
                for id in ids.iter().filter(|id| id.scheme == "digest") {
                    any = true;
                    push(Acl {
                        perms: entry.perms,
                        id: id.clone(),
                    });
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "digest" if digest_id_valid(&entry.id.id) => push(entry.clone()),
            "ip" if ip_id_valid(&entry.id.id) => push(entry.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// A digest id has exactly one `:` with a non-empty hash after it.
fn digest_id_valid(id: &str) -> bool {
    let mut parts = id.split(':');
    matches!((parts.next(), parts.next(), parts.next()), (Some(_), Some(h), None) if !h.is_empty())
}

/// `a.b.c.d`, an IPv6 address, either optionally with `/bits`.
fn ip_id_valid(id: &str) -> bool {
    parse_ip_range(id).is_some()
}

fn parse_ip_range(id: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.parse::<u32>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((addr, bits))
}

fn ip_matches(range: &str, client: &str) -> bool {
    let (Some((net, bits)), Ok(addr)) = (parse_ip_range(range), client.parse::<IpAddr>()) else {
        return false;
    };
    let (net, addr, width) = match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) as u128, u32::from(a) as u128, 32),
        (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
        _ => return false,
    };
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (width - bits) & (u128::MAX >> (128 - width))
    };
    net & mask == addr & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_is_base64_sha1() {
        // Known value: ZooKeeper's DigestAuthenticationProvider gives this for super:test.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    #[test]
    fn check_decisions() {
        let bob = Id::new("digest", &digest("bob:pw"));
        let ip = Id::new("ip", "127.0.0.1");
        // (ACL, permission asked, session ids, allowed, why)
        type Row<'a> = (&'a [Acl], i32, Vec<Id>, bool, &'a str);
        let rows: [Row; 8] = [
            (
                &[acl(perms::ALL, "world", "anyone")],
                perms::READ,
                vec![],
                true,
                "open",
            ),
            (
                &[acl(perms::WRITE, "world", "anyone")],
                perms::READ,
                vec![],
                false,
                "perm missing",
            ),
            (
                &[acl(perms::READ, "digest", &bob.id)],
                perms::READ,
                vec![bob.clone()],
                true,
                "digest",
            ),
            (
                &[acl(perms::READ, "digest", &bob.id)],
                perms::READ,
                vec![ip.clone()],
                false,
                "no digest",
            ),
            (
                &[acl(perms::READ, "ip", "127.0.0.0/8")],
                perms::READ,
                vec![ip.clone()],
                true,
                "ip range",
            ),
            (
                &[acl(perms::READ, "ip", "10.0.0.0/8")],
                perms::READ,
                vec![ip.clone()],
                false,
                "other net",
            ),
            (
                &[acl(0, "world", "anyone")],
                perms::ADMIN,
                vec![Id::new("super", "")],
                true,
                "super",
            ),
            (&[], perms::ADMIN, vec![], true, "empty acl allows all"),
        ];
        for (list, perm, ids, ok, why) in rows {
            assert_eq!(check(list, perm, &ids).is_ok(), ok, "{why}");
        }
    }

    #[test]
    fn fixup_decisions() {
        let bob = Id::new("digest", &digest("bob:pw"));
        let ip = Id::new("ip", "127.0.0.1");
        assert_eq!(fixup(&[], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup(&[acl(1, "world", "bob")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(1, "nope", "x")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(1, "auth", "")], std::slice::from_ref(&ip)),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(31, "auth", "")], &[ip, bob.clone()]),
            Ok(vec![Acl { perms: 31, id: bob }])
        );
        assert_eq!(
            fixup(&[acl(1, "ip", "1.2.3.4/33")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(1, "digest", "nohash")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        let open = Acl::open_unsafe();
        let doubled = [open[0].clone(), open[0].clone()];
        assert_eq!(fixup(&doubled, &[]), Ok(open));
    }
}
