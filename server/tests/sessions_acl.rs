//! Sessions (ephemeral cleanup, read-your-writes, auth, whoami) and ACLs
//! (world, digest, auth, ip, super, permission bits, InvalidACL / NoAuth).

mod common;

use std::time::Duration;

use tokio::time::timeout;
use zookeeper_client::{
    Acl, Acls, AuthId, AuthUser, Client, CreateMode, CreateOptions, Error, EventType, Permission,
    SessionState,
};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
const EPHEMERAL_SEQ: CreateOptions<'static> =
    CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(10);

/// base64(sha1("alice:secret")) / base64(sha1("bob:pw")), as real ZK computes them.
const ALICE_ID: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";
const BOB_ID: &str = "bob:ikIaKsbtGweaHnb/jKn7OHqbunM=";

async fn super_client(server: &common::TestServer) -> Client {
    let client = common::connect(server).await;
    client.auth("digest", b"super:test").await.unwrap();
    client
}

fn with_acl(acl: &[Acl]) -> CreateOptions<'_> {
    CreateMode::Persistent.with_acls(Acls::new(acl))
}

fn sorted_users(mut users: Vec<AuthUser>) -> Vec<(String, String)> {
    let mut v: Vec<_> = users
        .drain(..)
        .map(|u| (u.scheme().to_string(), u.user().to_string()))
        .collect();
    v.sort();
    v
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn sorted_acl(mut acl: Vec<Acl>) -> Vec<(i32, String, String)> {
    let mut v: Vec<_> = acl
        .drain(..)
        .map(|a| {
            let perm = [
                Permission::READ,
                Permission::WRITE,
                Permission::CREATE,
                Permission::DELETE,
                Permission::ADMIN,
            ]
            .iter()
            .enumerate()
            .filter(|(_, p)| a.permission().has(**p))
            .map(|(i, _)| 1 << i)
            .sum();
            (perm, a.scheme().to_string(), a.id().to_string())
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- sessions

#[tokio::test]
async fn ephemerals_vanish_when_creator_session_closes() {
    let server = common::start();
    let root = "/session_ephemeral_cleanup";
    let watcher_client = common::fresh_root(&server, root).await;
    let owner = common::connect(&server).await;
    owner
        .create("/session_ephemeral_cleanup/e", b"", &EPHEMERAL)
        .await
        .unwrap();
    owner
        .create("/session_ephemeral_cleanup/s-", b"", &EPHEMERAL_SEQ)
        .await
        .unwrap();
    watcher_client
        .create("/session_ephemeral_cleanup/keep", b"", &PERSISTENT)
        .await
        .unwrap();

    let (_, _, data_watch) = watcher_client
        .get_and_watch_data("/session_ephemeral_cleanup/e")
        .await
        .unwrap();
    let (_, exist_watch) = watcher_client
        .check_and_watch_stat("/session_ephemeral_cleanup/s-0000000001")
        .await
        .unwrap();
    let (children, child_watch) = watcher_client.list_and_watch_children(root).await.unwrap();
    assert_eq!(children.len(), 3);

    drop(owner); // closes the session

    let event = timeout(WAIT, data_watch.changed()).await.unwrap();
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeDeleted, "/session_ephemeral_cleanup/e")
    );
    let event = timeout(WAIT, exist_watch.changed()).await.unwrap();
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (
            EventType::NodeDeleted,
            "/session_ephemeral_cleanup/s-0000000001"
        )
    );
    let event = timeout(WAIT, child_watch.changed()).await.unwrap();
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeChildrenChanged, root)
    );

    // Both ephemerals are gone by the time the session close is visible.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let children = watcher_client.list_children(root).await.unwrap();
        if children == vec!["keep"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ephemerals still present: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stat = watcher_client.check_stat(root).await.unwrap().unwrap();
    assert_eq!(stat.cversion, 5, "3 creates + 2 deletes by session close");
    assert_eq!(stat.num_children, 1);
}

#[tokio::test]
async fn sessions_have_distinct_ids_and_timeout() {
    let server = common::start();
    let a = common::connect(&server).await;
    let b = common::connect(&server).await;
    assert_ne!(a.session_id(), b.session_id());
    assert_ne!(a.session_id().0, 0);
    assert_eq!(a.session_timeout(), Duration::from_secs(10));
    assert_eq!(a.state(), SessionState::SyncConnected);
}

#[tokio::test]
async fn session_reads_its_own_pipelined_writes() {
    let server = common::start();
    let client = common::fresh_root(&server, "/session_read_own_writes").await;
    let create = client.create("/session_read_own_writes/n", b"v0", &PERSISTENT);
    let exists = client.check_stat("/session_read_own_writes/n");
    let write = client.set_data("/session_read_own_writes/n", b"v1", Some(0));
    let read = client.get_data("/session_read_own_writes/n");
    let children = client.list_children("/session_read_own_writes");
    let delete = client.delete("/session_read_own_writes/n", Some(1));
    let gone = client.check_stat("/session_read_own_writes/n");

    let (created, _) = create.await.unwrap();
    assert_eq!(exists.await.unwrap(), Some(created));
    let written = write.await.unwrap();
    assert_eq!(read.await.unwrap(), (b"v1".to_vec(), written));
    assert_eq!(children.await.unwrap(), vec!["n"]);
    delete.await.unwrap();
    assert_eq!(gone.await.unwrap(), None);
}

#[tokio::test]
async fn unknown_auth_scheme_fails_the_session() {
    let server = common::start();
    let client = common::connect(&server).await;
    assert_eq!(
        client.auth("nosuchscheme", b"whatever").await.unwrap_err(),
        Error::AuthFailed
    );
    assert_eq!(client.state(), SessionState::AuthFailed);
    assert_eq!(client.check_stat("/").await.unwrap_err(), Error::AuthFailed);
}

#[tokio::test]
async fn whoami_lists_ip_then_added_identities() {
    let server = common::start();
    let client = common::connect(&server).await;
    assert_eq!(
        sorted_users(client.list_auth_users().await.unwrap()),
        pairs(&[("ip", "127.0.0.1")])
    );
    client.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(
        sorted_users(client.list_auth_users().await.unwrap()),
        pairs(&[("digest", "alice"), ("ip", "127.0.0.1")])
    );
    client.auth("digest", b"bob:pw").await.unwrap();
    client.auth("digest", b"alice:secret").await.unwrap(); // no duplicate
    assert_eq!(
        sorted_users(client.list_auth_users().await.unwrap()),
        pairs(&[("digest", "alice"), ("digest", "bob"), ("ip", "127.0.0.1")])
    );
    let admin = super_client(&server).await;
    assert_eq!(
        sorted_users(admin.list_auth_users().await.unwrap()),
        // Real ZK additionally reports a ("super", "") identity for the super user.
        pairs(&[("digest", "super"), ("ip", "127.0.0.1"), ("super", "")])
    );
}

// ---------------------------------------------------------------- ACLs

#[tokio::test]
async fn world_read_only_acl() {
    let server = common::start();
    let root = "/acl_world_read_only";
    let client = common::fresh_root(&server, root).await;
    let admin = super_client(&server).await;
    client
        .create(
            "/acl_world_read_only/n",
            b"data",
            &CreateMode::Persistent.with_acls(Acls::anyone_read()),
        )
        .await
        .unwrap();
    admin
        .create("/acl_world_read_only/n/child", b"", &PERSISTENT)
        .await
        .unwrap();

    assert_eq!(
        client.get_data("/acl_world_read_only/n").await.unwrap().0,
        b"data"
    );
    assert_eq!(
        client
            .list_children("/acl_world_read_only/n")
            .await
            .unwrap(),
        vec!["child"]
    );
    assert_eq!(
        client.get_acl("/acl_world_read_only/n").await.unwrap().0,
        Acls::anyone_read().to_vec()
    );
    assert_eq!(
        client
            .set_data("/acl_world_read_only/n", b"x", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .create("/acl_world_read_only/n/c2", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .delete("/acl_world_read_only/n/child", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .set_acl("/acl_world_read_only/n", &Acls::anyone_all(), None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    // Deleting the node itself needs DELETE on its parent, which is open.
    admin
        .delete("/acl_world_read_only/n/child", None)
        .await
        .unwrap();
    client.delete("/acl_world_read_only/n", None).await.unwrap();
}

#[tokio::test]
async fn each_permission_bit_gates_its_operation() {
    let server = common::start();
    let root = "/acl_permission_bits";
    let client = common::fresh_root(&server, root).await;
    let admin = super_client(&server).await;
    let only = |perm| [Acl::new(perm, AuthId::anyone())];

    let create_only = only(Permission::CREATE);
    client
        .create("/acl_permission_bits/c", b"", &with_acl(&create_only))
        .await
        .unwrap();
    client
        .create("/acl_permission_bits/c/x", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        client.get_data("/acl_permission_bits/c").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .list_children("/acl_permission_bits/c")
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .get_children("/acl_permission_bits/c")
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .count_descendants_number("/acl_permission_bits/c")
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .delete("/acl_permission_bits/c/x", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    // exists needs no permission at all.
    assert_eq!(
        client
            .check_stat("/acl_permission_bits/c")
            .await
            .unwrap()
            .unwrap()
            .num_children,
        1
    );

    let delete_only = only(Permission::DELETE);
    client
        .create("/acl_permission_bits/d", b"", &with_acl(&delete_only))
        .await
        .unwrap();
    admin
        .create("/acl_permission_bits/d/x", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        client
            .create("/acl_permission_bits/d/y", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    client
        .delete("/acl_permission_bits/d/x", None)
        .await
        .unwrap();

    let write_only = only(Permission::WRITE);
    client
        .create("/acl_permission_bits/w", b"", &with_acl(&write_only))
        .await
        .unwrap();
    assert_eq!(
        client
            .set_data("/acl_permission_bits/w", b"x", None)
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        client.get_data("/acl_permission_bits/w").await.unwrap_err(),
        Error::NoAuth
    );
    // get_acl needs READ or ADMIN.
    assert_eq!(
        client.get_acl("/acl_permission_bits/w").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .set_acl("/acl_permission_bits/w", &Acls::anyone_all(), None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );

    let admin_only = only(Permission::ADMIN);
    client
        .create("/acl_permission_bits/a", b"", &with_acl(&admin_only))
        .await
        .unwrap();
    assert_eq!(
        client.get_acl("/acl_permission_bits/a").await.unwrap().0,
        admin_only.to_vec()
    );
    assert_eq!(
        client
            .set_data("/acl_permission_bits/a", b"x", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .set_acl("/acl_permission_bits/a", &Acls::anyone_all(), Some(0))
            .await
            .unwrap()
            .aversion,
        1
    );
    assert_eq!(
        client
            .set_data("/acl_permission_bits/a", b"x", None)
            .await
            .unwrap()
            .version,
        1
    );

    let none = only(Permission::NONE);
    client
        .create("/acl_permission_bits/none", b"", &with_acl(&none))
        .await
        .unwrap();
    assert_eq!(
        client
            .get_acl("/acl_permission_bits/none")
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert!(client
        .check_stat("/acl_permission_bits/none")
        .await
        .unwrap()
        .is_some());
}

/// Real ZK checks permissions before existence and versions.
#[tokio::test]
async fn no_auth_takes_precedence() {
    let server = common::start();
    let client = common::fresh_root(&server, "/acl_no_auth_precedence").await;
    let none = [Acl::new(Permission::NONE, AuthId::anyone())];
    client
        .create("/acl_no_auth_precedence/n", b"", &with_acl(&none))
        .await
        .unwrap();
    assert_eq!(
        client
            .set_data("/acl_no_auth_precedence/n", b"", Some(42))
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .set_acl("/acl_no_auth_precedence/n", &Acls::anyone_all(), Some(42))
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .delete("/acl_no_auth_precedence/n/missing", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client
            .create("/acl_no_auth_precedence/n/x", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    // ...but a missing parent is still NoNode, and an existing node NodeExists.
    assert_eq!(
        client
            .create("/acl_no_auth_precedence/n/x/y", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client
            .create("/acl_no_auth_precedence/n", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NodeExists
    );
}

#[tokio::test]
async fn digest_acl_requires_matching_credentials() {
    let server = common::start();
    let client = common::fresh_root(&server, "/acl_digest").await;
    let acl = [Acl::new(Permission::ALL, AuthId::new("digest", ALICE_ID))];
    client
        .create("/acl_digest/n", b"secret-data", &with_acl(&acl))
        .await
        .unwrap();

    let stranger = common::connect(&server).await;
    assert_eq!(
        stranger.get_data("/acl_digest/n").await.unwrap_err(),
        Error::NoAuth
    );
    assert!(stranger
        .check_stat("/acl_digest/n")
        .await
        .unwrap()
        .is_some());

    // A wrong password is accepted as an identity, it just does not match.
    let wrong = common::connect(&server).await;
    wrong.auth("digest", b"alice:wrong").await.unwrap();
    assert_eq!(
        wrong.get_data("/acl_digest/n").await.unwrap_err(),
        Error::NoAuth
    );

    let alice = common::connect(&server).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(
        alice.get_data("/acl_digest/n").await.unwrap().0,
        b"secret-data"
    );
    alice.set_data("/acl_digest/n", b"new", None).await.unwrap();
    assert_eq!(
        alice.get_acl("/acl_digest/n").await.unwrap().0,
        acl.to_vec()
    );
}

#[tokio::test]
async fn auth_scheme_expands_to_session_identities() {
    let server = common::start();
    let root = "/acl_auth_scheme";
    let client = common::fresh_root(&server, root).await;
    let creator_all = CreateMode::Persistent.with_acls(Acls::creator_all());

    // No authenticated identity: "auth" has nothing to expand to.
    assert_eq!(
        client
            .create("/acl_auth_scheme/n", b"", &creator_all)
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );

    let alice = common::connect(&server).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    alice
        .create("/acl_auth_scheme/a", b"x", &creator_all)
        .await
        .unwrap();
    assert_eq!(
        alice.get_acl("/acl_auth_scheme/a").await.unwrap().0,
        vec![Acl::new(Permission::ALL, AuthId::new("digest", ALICE_ID))]
    );
    assert_eq!(
        client.get_data("/acl_auth_scheme/a").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(alice.get_data("/acl_auth_scheme/a").await.unwrap().0, b"x");

    // Several identities: one entry each (ip identities are not used).
    alice.auth("digest", b"bob:pw").await.unwrap();
    alice
        .create("/acl_auth_scheme/ab", b"", &creator_all)
        .await
        .unwrap();
    assert_eq!(
        sorted_acl(alice.get_acl("/acl_auth_scheme/ab").await.unwrap().0),
        vec![
            (31, "digest".to_string(), ALICE_ID.to_string()),
            (31, "digest".to_string(), BOB_ID.to_string())
        ]
    );
    let bob = common::connect(&server).await;
    bob.auth("digest", b"bob:pw").await.unwrap();
    assert_eq!(bob.get_data("/acl_auth_scheme/ab").await.unwrap().0, b"");
    assert_eq!(
        bob.get_data("/acl_auth_scheme/a").await.unwrap_err(),
        Error::NoAuth
    );
}

/// An "auth" entry makes the whole ACL invalid when the session has no
/// authenticated identity, even next to valid entries; once authenticated it
/// expands in place.
#[tokio::test]
async fn auth_entry_next_to_world_entry() {
    let server = common::start();
    let client = common::fresh_root(&server, "/acl_auth_mixed").await;
    let acl = [
        Acl::new(Permission::READ, AuthId::anyone()),
        Acl::new(Permission::ALL, AuthId::authed()),
    ];
    assert_eq!(
        client
            .create("/acl_auth_mixed/n", b"", &with_acl(&acl))
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );
    client.auth("digest", b"alice:secret").await.unwrap();
    client
        .create("/acl_auth_mixed/n", b"", &with_acl(&acl))
        .await
        .unwrap();
    assert_eq!(
        sorted_acl(client.get_acl("/acl_auth_mixed/n").await.unwrap().0),
        vec![
            (1, "world".to_string(), "anyone".to_string()),
            (31, "digest".to_string(), ALICE_ID.to_string())
        ]
    );
}

#[tokio::test]
async fn ip_acl_matches_address_and_cidr() {
    let server = common::start();
    let client = common::fresh_root(&server, "/acl_ip").await;
    let exact = [Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1"))];
    let cidr = [Acl::new(Permission::READ, AuthId::new("ip", "127.0.0.0/8"))];
    let elsewhere = [Acl::new(Permission::ALL, AuthId::new("ip", "10.0.0.1"))];
    let elsewhere_net = [Acl::new(Permission::ALL, AuthId::new("ip", "10.0.0.0/8"))];
    client
        .create("/acl_ip/exact", b"e", &with_acl(&exact))
        .await
        .unwrap();
    client
        .create("/acl_ip/cidr", b"c", &with_acl(&cidr))
        .await
        .unwrap();
    client
        .create("/acl_ip/elsewhere", b"", &with_acl(&elsewhere))
        .await
        .unwrap();
    client
        .create("/acl_ip/elsewhere_net", b"", &with_acl(&elsewhere_net))
        .await
        .unwrap();

    let other = common::connect(&server).await;
    assert_eq!(other.get_data("/acl_ip/exact").await.unwrap().0, b"e");
    other.set_data("/acl_ip/exact", b"e2", None).await.unwrap();
    assert_eq!(other.get_data("/acl_ip/cidr").await.unwrap().0, b"c");
    assert_eq!(
        other
            .set_data("/acl_ip/cidr", b"x", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        other.get_data("/acl_ip/elsewhere").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        other.get_data("/acl_ip/elsewhere_net").await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        client.get_acl("/acl_ip/cidr").await.unwrap().0,
        cidr.to_vec()
    );
}

#[tokio::test]
async fn super_digest_user_bypasses_acls() {
    let server = common::start();
    let root = "/acl_super";
    let client = common::fresh_root(&server, root).await;
    let acl = [Acl::new(Permission::ALL, AuthId::new("digest", ALICE_ID))];
    client
        .create("/acl_super/n", b"private", &with_acl(&acl))
        .await
        .unwrap();
    let none = [Acl::new(Permission::NONE, AuthId::anyone())];
    client
        .create("/acl_super/locked", b"locked", &with_acl(&none))
        .await
        .unwrap();

    let admin = super_client(&server).await;
    assert_eq!(admin.get_data("/acl_super/n").await.unwrap().0, b"private");
    assert_eq!(
        admin.get_data("/acl_super/locked").await.unwrap().0,
        b"locked"
    );
    admin
        .create("/acl_super/locked/child", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        admin.list_children("/acl_super/locked").await.unwrap(),
        vec!["child"]
    );
    admin
        .set_data("/acl_super/n", b"changed", Some(0))
        .await
        .unwrap();
    admin
        .set_acl("/acl_super/n", &Acls::anyone_read(), Some(0))
        .await
        .unwrap();
    assert_eq!(client.get_data("/acl_super/n").await.unwrap().0, b"changed");
    admin.delete("/acl_super/locked/child", None).await.unwrap();

    // The wrong super password is just another digest identity.
    let not_super = common::connect(&server).await;
    not_super.auth("digest", b"super:wrong").await.unwrap();
    assert_eq!(
        not_super.get_data("/acl_super/locked").await.unwrap_err(),
        Error::NoAuth
    );
}

#[tokio::test]
async fn invalid_acls_are_rejected() {
    let server = common::start();
    let root = "/acl_invalid";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/acl_invalid/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let cases: Vec<(&str, Vec<Acl>)> = vec![
        (
            "unknown scheme",
            vec![Acl::new(Permission::ALL, AuthId::new("foo", "bar"))],
        ),
        (
            "world with other id",
            vec![Acl::new(Permission::ALL, AuthId::new("world", "someone"))],
        ),
        (
            "digest without hash",
            vec![Acl::new(Permission::ALL, AuthId::new("digest", "nocolon"))],
        ),
        (
            "ip garbage",
            vec![Acl::new(Permission::ALL, AuthId::new("ip", "abc"))],
        ),
        (
            "ip bad prefix",
            vec![Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1/33"))],
        ),
        (
            "auth unauthenticated",
            vec![Acl::new(Permission::ALL, AuthId::authed())],
        ),
        (
            "one bad entry among good",
            vec![
                Acl::new(Permission::ALL, AuthId::anyone()),
                Acl::new(Permission::ALL, AuthId::new("foo", "bar")),
            ],
        ),
    ];
    for (name, acl) in &cases {
        assert_eq!(
            client
                .create("/acl_invalid/x", b"", &with_acl(acl))
                .await
                .unwrap_err(),
            Error::InvalidAcl,
            "{name}"
        );
        assert_eq!(
            client
                .set_acl("/acl_invalid/n", acl, None)
                .await
                .unwrap_err(),
            Error::InvalidAcl,
            "{name}"
        );
    }
    // Empty ACL list (the crate refuses it for create on its own; set_acl reaches the server).
    assert_eq!(
        client
            .set_acl("/acl_invalid/n", &[], None)
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );
    assert_eq!(
        client
            .create("/acl_invalid/x", b"", &with_acl(&[]))
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );

    // InvalidACL is reported before NoNode (missing parent) and NodeExists.
    let bad = &cases[0].1;
    assert_eq!(
        client
            .create("/acl_invalid/missing/x", b"", &with_acl(bad))
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );
    assert_eq!(
        client
            .create("/acl_invalid/n", b"", &with_acl(bad))
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );

    let stat = client.check_stat("/acl_invalid/n").await.unwrap().unwrap();
    assert_eq!(stat.aversion, 0, "failed set_acl calls changed nothing");
    assert_eq!(client.check_stat("/acl_invalid/x").await.unwrap(), None);
}
