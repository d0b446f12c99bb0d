/*
 * Cross-client suite for herd using the official Apache ZooKeeper C client
 * (libzookeeper_mt, synchronous API).
 *
 *   c_suite HOST:PORT [--container-wait SECONDS]
 *
 * Everything happens under /c_suite, which is removed at start and at end.
 * One line is printed per check; the last line is "N passed, M failed".
 * The exit status is non-zero if any check failed.
 *
 * --container-wait S (or env CSUITE_CONTAINER_WAIT=S): additionally wait up to
 * S seconds for an emptied container and an expired TTL node to be reaped by
 * the server.  Only meaningful when the server runs its container manager
 * with a short interval (znode.container.checkIntervalMs); default 0 = skip.
 */
#define _GNU_SOURCE
#ifndef THREADED
#define THREADED /* enables the synchronous API in zookeeper.h */
#endif
#include <zookeeper/zookeeper.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROOT "/c_suite"
#define WAIT_MS 5000

/* digest credentials; hashes are base64(sha1("user:password")) */
#define USER1 "csuser"
#define PASS1 "cspass"
#define HASH1 "csuser:O47r2m42rRkUJHK65VpP57aVadc="
#define USER2 "csother"
#define PASS2 "otherpw"
#define HASH2 "csother:7N9R2CwTub1l30uqRrosZYEm/jw="

static int passed, failed;
static char failed_names[4096];
static const char *hostport;

static void check(int ok, const char *name, const char *fmt, ...)
{
    char detail[1024] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    if (ok) {
        passed++;
        printf("PASS %s\n", name);
    } else {
        failed++;
        printf("FAIL %s%s%s\n", name, detail[0] ? ": " : "", detail);
        if (strlen(failed_names) + strlen(name) + 3 < sizeof failed_names) {
            if (failed_names[0])
                strcat(failed_names, ", ");
            strcat(failed_names, name);
        }
    }
    fflush(stdout);
}

/* rc check helper: expect a specific return code */
#define EXPECT_RC(rc, want, name)                                              \
    check((rc) == (want), name, "got %d (%s), want %d (%s)", (rc), zerror(rc), \
          (want), zerror(want))

/* ------------------------------------------------------------------ */
/* event recording                                                     */

#define MAX_EVENTS 256
struct event {
    int type;
    int state;
    char path[256];
    const char *tag; /* which watcher saw it */
    int consumed;
};

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cv = PTHREAD_COND_INITIALIZER;
static struct event events[MAX_EVENTS];
static int nevents;

struct conn {
    zhandle_t *zh;
    const char *name;
    int state; /* last session state seen by the default watcher */
};

static void record(int type, int state, const char *path, const char *tag)
{
    pthread_mutex_lock(&ev_mu);
    if (nevents < MAX_EVENTS) {
        struct event *e = &events[nevents++];
        e->type = type;
        e->state = state;
        snprintf(e->path, sizeof e->path, "%s", path ? path : "");
        e->tag = tag;
        e->consumed = 0;
    }
    pthread_cond_broadcast(&ev_cv);
    pthread_mutex_unlock(&ev_mu);
}

static void default_watcher(zhandle_t *zh, int type, int state,
                            const char *path, void *ctx)
{
    (void)zh;
    struct conn *c = ctx;
    if (type == ZOO_SESSION_EVENT) {
        pthread_mutex_lock(&ev_mu);
        c->state = state;
        pthread_cond_broadcast(&ev_cv);
        pthread_mutex_unlock(&ev_mu);
        return;
    }
    record(type, state, path, c ? c->name : "default");
}

/* per-call watcher: ctx is a tag string */
static void tagged_watcher(zhandle_t *zh, int type, int state,
                           const char *path, void *ctx)
{
    (void)zh;
    record(type, state, path, (const char *)ctx);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* wait for an unconsumed event with this tag/type/path; returns 1 if found */
static int wait_event(const char *tag, int type, const char *path, int ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&ev_mu);
    for (;;) {
        for (int i = 0; i < nevents; i++) {
            struct event *e = &events[i];
            if (!e->consumed && e->tag == tag && e->type == type &&
                strcmp(e->path, path) == 0) {
                e->consumed = 1;
                pthread_mutex_unlock(&ev_mu);
                return 1;
            }
        }
        if (pthread_cond_timedwait(&ev_cv, &ev_mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&ev_mu);
            return 0;
        }
    }
}

/* count of unconsumed events with a given tag */
static int pending_events(const char *tag, char *desc, size_t desclen)
{
    int n = 0;
    desc[0] = 0;
    pthread_mutex_lock(&ev_mu);
    for (int i = 0; i < nevents; i++) {
        if (!events[i].consumed && events[i].tag == tag) {
            n++;
            size_t l = strlen(desc);
            snprintf(desc + l, desclen - l, "[type=%d path=%s] ",
                     events[i].type, events[i].path);
        }
    }
    pthread_mutex_unlock(&ev_mu);
    return n;
}

static int connect_to(struct conn *c, const char *name)
{
    c->name = name;
    c->state = 0;
    c->zh = zookeeper_init(hostport, default_watcher, 10000, NULL, c, 0);
    if (!c->zh)
        return 0;
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&ev_mu);
    while (c->state != ZOO_CONNECTED_STATE) {
        if (pthread_cond_timedwait(&ev_cv, &ev_mu, &ts) == ETIMEDOUT)
            break;
    }
    int ok = c->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&ev_mu);
    return ok;
}

/* auth completion */
struct auth_wait {
    int done;
    int rc;
};
static void auth_done(int rc, const void *data)
{
    struct auth_wait *w = (struct auth_wait *)data;
    pthread_mutex_lock(&ev_mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_broadcast(&ev_cv);
    pthread_mutex_unlock(&ev_mu);
}

static int add_auth(zhandle_t *zh, const char *cred)
{
    struct auth_wait w = {0, -999};
    int rc = zoo_add_auth(zh, "digest", cred, (int)strlen(cred), auth_done, &w);
    if (rc != ZOK)
        return rc;
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&ev_mu);
    while (!w.done) {
        if (pthread_cond_timedwait(&ev_cv, &ev_mu, &ts) == ETIMEDOUT)
            break;
    }
    rc = w.done ? w.rc : ZOPERATIONTIMEOUT;
    pthread_mutex_unlock(&ev_mu);
    return rc;
}

/* recursive delete (ignores errors) */
static void rmr(zhandle_t *zh, const char *path)
{
    struct String_vector kids = {0, NULL};
    if (zoo_get_children(zh, path, 0, &kids) == ZOK) {
        for (int i = 0; i < kids.count; i++) {
            char child[512];
            snprintf(child, sizeof child, "%s/%s", path, kids.data[i]);
            rmr(zh, child);
        }
        deallocate_String_vector(&kids);
    }
    zoo_delete(zh, path, -1);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_seq_suffix(const char *s)
{
    if (strlen(s) != 10)
        return 0;
    for (int i = 0; i < 10; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL watchdog: suite exceeded 60 s\n";
    ssize_t r = write(1, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

static void ms_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int container_wait = 0;
    if (getenv("CSUITE_CONTAINER_WAIT"))
        container_wait = atoi(getenv("CSUITE_CONTAINER_WAIT"));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--container-wait") == 0 && i + 1 < argc)
            container_wait = atoi(argv[++i]);
        else if (!hostport)
            hostport = argv[i];
    }
    if (!hostport) {
        fprintf(stderr, "usage: %s HOST:PORT [--container-wait SECONDS]\n",
                argv[0]);
        return 2;
    }
    signal(SIGALRM, watchdog);
    alarm(60);
    setvbuf(stdout, NULL, _IOLBF, 0);
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);

    struct conn A, B, C;
    int rc;
    char buf[1024], pbuf[512];
    int blen;
    struct Stat st, st2;

    /* ---------- connect ---------- */
    check(connect_to(&A, "A"), "connect A (ZOO_CONNECTED_STATE)", "state=%d",
          A.state);
    if (A.state != ZOO_CONNECTED_STATE) {
        printf("%d passed, %d failed\nFAILED: %s\n", passed, failed,
               failed_names);
        return 1;
    }
    const clientid_t *cidA = zoo_client_id(A.zh);
    check(cidA && cidA->client_id != 0, "session id assigned", NULL);
    check(zoo_recv_timeout(A.zh) > 0, "negotiated session timeout > 0",
          "timeout=%d", zoo_recv_timeout(A.zh));

    rmr(A.zh, ROOT);

    /* ---------- basic create / get / set ---------- */
    rc = zoo_create(A.zh, ROOT, "root", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                    pbuf, sizeof pbuf);
    EXPECT_RC(rc, ZOK, "create " ROOT);
    check(rc == ZOK && strcmp(pbuf, ROOT) == 0, "create returns path",
          "path=%s", pbuf);

    rc = zoo_create(A.zh, ROOT, "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                    NULL, 0);
    EXPECT_RC(rc, ZNODEEXISTS, "create existing -> ZNODEEXISTS");

    rc = zoo_create(A.zh, ROOT "/missing/child", "x", 1, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_PERSISTENT, NULL, 0);
    EXPECT_RC(rc, ZNONODE, "create without parent -> ZNONODE");

    memset(&st, 0, sizeof st);
    rc = zoo_create2(A.zh, ROOT "/data", "hello", 5, &ZOO_OPEN_ACL_UNSAFE,
                     ZOO_PERSISTENT, pbuf, sizeof pbuf, &st);
    EXPECT_RC(rc, ZOK, "create2 /data");
    check(st.version == 0 && st.dataLength == 5 && st.czxid != 0 &&
              st.czxid == st.mzxid && st.ephemeralOwner == 0 &&
              st.numChildren == 0,
          "create2 stat (version 0, dataLength 5, czxid==mzxid)",
          "version=%d dataLength=%d czxid=%lld mzxid=%lld owner=%lld", st.version,
          st.dataLength, (long long)st.czxid, (long long)st.mzxid,
          (long long)st.ephemeralOwner);

    blen = sizeof buf;
    memset(&st2, 0, sizeof st2);
    rc = zoo_get(A.zh, ROOT "/data", 0, buf, &blen, &st2);
    EXPECT_RC(rc, ZOK, "get /data");
    check(rc == ZOK && blen == 5 && memcmp(buf, "hello", 5) == 0,
          "get returns data", "len=%d", blen);
    check(st2.czxid == st.czxid && st2.version == 0, "get stat matches create2",
          NULL);

    /* binary data with NUL bytes */
    const char bin[] = {'a', 0, 'b', 0, (char)0xff};
    rc = zoo_create(A.zh, ROOT "/bin", bin, 5, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_PERSISTENT, NULL, 0);
    blen = sizeof buf;
    rc = rc == ZOK ? zoo_get(A.zh, ROOT "/bin", 0, buf, &blen, NULL) : rc;
    check(rc == ZOK && blen == 5 && memcmp(buf, bin, 5) == 0,
          "binary data round-trip", "rc=%d len=%d", rc, blen);

    /* null data: C client sends length -1 */
    rc = zoo_create(A.zh, ROOT "/nulldata", NULL, -1, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_PERSISTENT, NULL, 0);
    blen = sizeof buf;
    rc = rc == ZOK ? zoo_get(A.zh, ROOT "/nulldata", 0, buf, &blen, &st2) : rc;
    check(rc == ZOK && blen == -1 && st2.dataLength == 0,
          "null data -> get length -1, dataLength 0", "rc=%d len=%d dataLength=%d",
          rc, blen, st2.dataLength);

    rc = zoo_set(A.zh, ROOT "/data", "world!", 6, 5);
    EXPECT_RC(rc, ZBADVERSION, "set with wrong version -> ZBADVERSION");
    memset(&st2, 0, sizeof st2);
    rc = zoo_set2(A.zh, ROOT "/data", "world!", 6, 0, &st2);
    EXPECT_RC(rc, ZOK, "set2 with version 0");
    check(st2.version == 1 && st2.dataLength == 6 && st2.mzxid > st.mzxid &&
              st2.czxid == st.czxid && st2.mtime >= st.ctime,
          "set2 stat (version 1, mzxid advanced)", "version=%d mzxid=%lld",
          st2.version, (long long)st2.mzxid);
    rc = zoo_set(A.zh, ROOT "/data", "again", 5, -1);
    EXPECT_RC(rc, ZOK, "set with version -1");
    blen = sizeof buf;
    rc = zoo_get(A.zh, ROOT "/data", 0, buf, &blen, &st2);
    check(rc == ZOK && blen == 5 && memcmp(buf, "again", 5) == 0 &&
              st2.version == 2,
          "get after sets (data 'again', version 2)", "len=%d version=%d", blen,
          st2.version);
    rc = zoo_set(A.zh, ROOT "/nope", "x", 1, -1);
    EXPECT_RC(rc, ZNONODE, "set missing node -> ZNONODE");
    blen = sizeof buf;
    rc = zoo_get(A.zh, ROOT "/nope", 0, buf, &blen, NULL);
    EXPECT_RC(rc, ZNONODE, "get missing node -> ZNONODE");

    /* ---------- exists ---------- */
    memset(&st2, 0, sizeof st2);
    rc = zoo_exists(A.zh, ROOT "/data", 0, &st2);
    check(rc == ZOK && st2.version == 2 && st2.dataLength == 5,
          "exists on existing node (stat)", "rc=%d version=%d", rc, st2.version);
    rc = zoo_exists(A.zh, ROOT "/nope", 0, &st2);
    EXPECT_RC(rc, ZNONODE, "exists on missing node -> ZNONODE");

    /* ---------- sequential + ephemeral ---------- */
    rc = zoo_create(A.zh, ROOT "/seq", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_PERSISTENT, NULL, 0);
    EXPECT_RC(rc, ZOK, "create /seq");
    char seq1[512] = "", seq2[512] = "", seq3[512] = "";
    rc = zoo_create(A.zh, ROOT "/seq/n-", "e", 1, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_EPHEMERAL | ZOO_SEQUENCE, seq1, sizeof seq1);
    EXPECT_RC(rc, ZOK, "create EPHEMERAL|SEQUENCE #1");
    rc = zoo_create(A.zh, ROOT "/seq/n-", "e", 1, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_EPHEMERAL | ZOO_SEQUENCE, seq2, sizeof seq2);
    EXPECT_RC(rc, ZOK, "create EPHEMERAL|SEQUENCE #2");
    check(strcmp(seq1, ROOT "/seq/n-0000000000") == 0,
          "first sequential name is n-0000000000", "got %s", seq1);
    check(strcmp(seq2, ROOT "/seq/n-0000000001") == 0,
          "second sequential name is n-0000000001", "got %s", seq2);
    rc = zoo_create(A.zh, ROOT "/seq/p-", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_PERSISTENT_SEQUENTIAL, seq3, sizeof seq3);
    const char *suf = strrchr(seq3, '-');
    check(rc == ZOK && suf && is_seq_suffix(suf + 1) &&
              strcmp(seq3, ROOT "/seq/p-0000000002") == 0,
          "PERSISTENT_SEQUENTIAL uses parent counter (p-0000000002)", "rc=%d got %s",
          rc, seq3);
    memset(&st2, 0, sizeof st2);
    rc = zoo_exists(A.zh, seq1, 0, &st2);
    check(rc == ZOK && st2.ephemeralOwner == cidA->client_id,
          "ephemeralOwner == session id", "rc=%d owner=%llx session=%llx", rc,
          (long long)st2.ephemeralOwner, (long long)cidA->client_id);
    rc = zoo_create(A.zh, ROOT "/seq/n-0000000000/kid", NULL, 0,
                    &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    EXPECT_RC(rc, ZNOCHILDRENFOREPHEMERALS,
              "child of ephemeral -> ZNOCHILDRENFOREPHEMERALS");

    /* ---------- get_children2 ---------- */
    struct String_vector kids = {0, NULL};
    memset(&st2, 0, sizeof st2);
    rc = zoo_get_children2(A.zh, ROOT "/seq", 0, &kids, &st2);
    EXPECT_RC(rc, ZOK, "get_children2 /seq");
    if (rc == ZOK) {
        qsort(kids.data, kids.count, sizeof(char *), cmpstr);
        check(kids.count == 3 && strcmp(kids.data[0], "n-0000000000") == 0 &&
                  strcmp(kids.data[1], "n-0000000001") == 0 &&
                  strcmp(kids.data[2], "p-0000000002") == 0,
              "get_children2 names", "count=%d", kids.count);
        check(st2.numChildren == 3 && st2.cversion == 3,
              "get_children2 stat (numChildren 3, cversion 3)",
              "numChildren=%d cversion=%d", st2.numChildren, st2.cversion);
        deallocate_String_vector(&kids);
    }
    rc = zoo_get_children2(A.zh, ROOT "/nope", 0, &kids, &st2);
    EXPECT_RC(rc, ZNONODE, "get_children2 missing -> ZNONODE");

    /* ---------- delete ---------- */
    rc = zoo_delete(A.zh, ROOT "/seq", -1);
    EXPECT_RC(rc, ZNOTEMPTY, "delete non-empty -> ZNOTEMPTY");
    rc = zoo_delete(A.zh, ROOT "/nope", -1);
    EXPECT_RC(rc, ZNONODE, "delete missing -> ZNONODE");
    rc = zoo_delete(A.zh, ROOT "/data", 0);
    EXPECT_RC(rc, ZBADVERSION, "delete with wrong version -> ZBADVERSION");
    rc = zoo_delete(A.zh, ROOT "/data", 2);
    EXPECT_RC(rc, ZOK, "delete with matching version");
    rc = zoo_exists(A.zh, ROOT "/data", 0, NULL);
    EXPECT_RC(rc, ZNONODE, "deleted node is gone");
    rc = zoo_delete(A.zh, seq3, -1);
    memset(&st2, 0, sizeof st2);
    rc = rc == ZOK ? zoo_exists(A.zh, ROOT "/seq", 0, &st2) : rc;
    check(rc == ZOK && st2.numChildren == 2 && st2.cversion == 4,
          "parent stat after child delete (numChildren 2, cversion 4)",
          "rc=%d numChildren=%d cversion=%d", rc, st2.numChildren, st2.cversion);

    /* ---------- multi ---------- */
    {
        zoo_op_t ops[4];
        zoo_op_result_t res[4];
        char p0[512] = "";
        memset(res, 0, sizeof res);
        zoo_create_op_init(&ops[0], ROOT "/m1", "one", 3, &ZOO_OPEN_ACL_UNSAFE,
                           ZOO_PERSISTENT, p0, sizeof p0);
        zoo_create_op_init(&ops[1], ROOT "/m2", "two", 3, &ZOO_OPEN_ACL_UNSAFE,
                           ZOO_PERSISTENT, NULL, 0);
        struct Stat mst;
        memset(&mst, 0, sizeof mst);
        zoo_set_op_init(&ops[2], ROOT "/m1", "uno", 3, 0, &mst);
        zoo_check_op_init(&ops[3], ROOT "/m2", 0);
        rc = zoo_multi(A.zh, 4, ops, res);
        EXPECT_RC(rc, ZOK, "multi success");
        check(res[0].err == ZOK && res[1].err == ZOK && res[2].err == ZOK &&
                  res[3].err == ZOK,
              "multi success per-op results all ZOK", "%d %d %d %d", res[0].err,
              res[1].err, res[2].err, res[3].err);
        check(strcmp(p0, ROOT "/m1") == 0, "multi create op returns path",
              "got %s", p0);
        check(mst.version == 1 && mst.dataLength == 3,
              "multi set op returns stat (version 1)", "version=%d",
              mst.version);
        blen = sizeof buf;
        rc = zoo_get(A.zh, ROOT "/m1", 0, buf, &blen, NULL);
        check(rc == ZOK && blen == 3 && memcmp(buf, "uno", 3) == 0,
              "multi effects visible", "rc=%d", rc);

        /* failure: the check op has a bad version; nothing may be applied */
        memset(res, 0, sizeof res);
        zoo_create_op_init(&ops[0], ROOT "/m3", "x", 1, &ZOO_OPEN_ACL_UNSAFE,
                           ZOO_PERSISTENT, NULL, 0);
        zoo_check_op_init(&ops[1], ROOT "/m2", 7);
        zoo_delete_op_init(&ops[2], ROOT "/m1", -1);
        rc = zoo_multi(A.zh, 3, ops, res);
        EXPECT_RC(rc, ZBADVERSION, "multi failure returns first error");
        check(res[0].err == ZOK && res[1].err == ZBADVERSION &&
                  res[2].err == ZRUNTIMEINCONSISTENCY,
              "multi failure per-op results (ZOK, ZBADVERSION, "
              "ZRUNTIMEINCONSISTENCY)",
              "got %d %d %d", res[0].err, res[1].err, res[2].err);
        rc = zoo_exists(A.zh, ROOT "/m3", 0, NULL);
        EXPECT_RC(rc, ZNONODE, "failed multi rolled back create");
        rc = zoo_exists(A.zh, ROOT "/m1", 0, NULL);
        EXPECT_RC(rc, ZOK, "failed multi rolled back delete");

        /* failure on a missing node */
        memset(res, 0, sizeof res);
        zoo_delete_op_init(&ops[0], ROOT "/m2", -1);
        zoo_delete_op_init(&ops[1], ROOT "/m-missing", -1);
        rc = zoo_multi(A.zh, 2, ops, res);
        EXPECT_RC(rc, ZNONODE, "multi delete missing -> ZNONODE");
        check(res[0].err == ZOK && res[1].err == ZNONODE,
              "multi ZNONODE per-op results (ZOK, ZNONODE)", "got %d %d",
              res[0].err, res[1].err);
        rc = zoo_exists(A.zh, ROOT "/m2", 0, NULL);
        EXPECT_RC(rc, ZOK, "multi ZNONODE rolled back");
    }

    /* ---------- second session ---------- */
    check(connect_to(&B, "B"), "connect B", "state=%d", B.state);

    /* data watch */
    {
        static const char *TAG = "wget";
        rc = zoo_create(A.zh, ROOT "/w", "0", 1, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        blen = sizeof buf;
        rc = rc == ZOK ? zoo_wget(A.zh, ROOT "/w", tagged_watcher, (void *)TAG,
                                  buf, &blen, NULL)
                       : rc;
        EXPECT_RC(rc, ZOK, "wget sets data watch");
        rc = zoo_set(B.zh, ROOT "/w", "1", 1, -1);
        EXPECT_RC(rc, ZOK, "set from second session");
        check(wait_event(TAG, ZOO_CHANGED_EVENT, ROOT "/w", WAIT_MS),
              "wget watcher gets ZOO_CHANGED_EVENT with path", NULL);
        /* one-shot: a second change must not fire again */
        zoo_set(B.zh, ROOT "/w", "2", 1, -1);
        zoo_exists(A.zh, ROOT "/w", 0, NULL); /* round trip for ordering */
        ms_sleep(200);
        char desc[512];
        check(pending_events(TAG, desc, sizeof desc) == 0,
              "data watch is one-shot", "extra events: %s", desc);

        /* data watch fires ZOO_DELETED_EVENT on delete */
        blen = sizeof buf;
        zoo_wget(A.zh, ROOT "/w", tagged_watcher, (void *)TAG, buf, &blen, NULL);
        rc = zoo_delete(B.zh, ROOT "/w", -1);
        check(rc == ZOK &&
                  wait_event(TAG, ZOO_DELETED_EVENT, ROOT "/w", WAIT_MS),
              "wget watcher gets ZOO_DELETED_EVENT on delete", "rc=%d", rc);
    }

    /* exists watch on a missing node -> created */
    {
        static const char *TAG = "wexists";
        rc = zoo_wexists(A.zh, ROOT "/later", tagged_watcher, (void *)TAG, NULL);
        EXPECT_RC(rc, ZNONODE, "wexists on missing node -> ZNONODE");
        rc = zoo_create(B.zh, ROOT "/later", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        check(rc == ZOK &&
                  wait_event(TAG, ZOO_CREATED_EVENT, ROOT "/later", WAIT_MS),
              "wexists watcher gets ZOO_CREATED_EVENT", "rc=%d", rc);
    }

    /* child watch */
    {
        static const char *TAG = "wchildren";
        rc = zoo_create(A.zh, ROOT "/kids", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        struct String_vector kv = {0, NULL};
        rc = rc == ZOK ? zoo_wget_children(A.zh, ROOT "/kids", tagged_watcher,
                                           (void *)TAG, &kv)
                       : rc;
        check(rc == ZOK && kv.count == 0, "wget_children on empty node",
              "rc=%d count=%d", rc, kv.count);
        if (rc == ZOK)
            deallocate_String_vector(&kv);
        rc = zoo_create(B.zh, ROOT "/kids/k1", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        check(rc == ZOK &&
                  wait_event(TAG, ZOO_CHILD_EVENT, ROOT "/kids", WAIT_MS),
              "wget_children watcher gets ZOO_CHILD_EVENT with parent path",
              "rc=%d", rc);
        /* data change of the parent must not fire a child watch */
        kv.count = 0;
        zoo_wget_children(A.zh, ROOT "/kids", tagged_watcher, (void *)TAG, &kv);
        if (kv.count)
            deallocate_String_vector(&kv);
        zoo_set(B.zh, ROOT "/kids", "d", 1, -1);
        zoo_exists(A.zh, ROOT "/kids", 0, NULL);
        ms_sleep(200);
        char desc[512];
        check(pending_events(TAG, desc, sizeof desc) == 0,
              "child watch ignores parent data change", "events: %s", desc);
        rc = zoo_delete(B.zh, ROOT "/kids/k1", -1);
        check(rc == ZOK &&
                  wait_event(TAG, ZOO_CHILD_EVENT, ROOT "/kids", WAIT_MS),
              "wget_children watcher gets ZOO_CHILD_EVENT on child delete",
              "rc=%d", rc);
    }

    /* ---------- watch removal ---------- */
    {
        static const char *TAG = "removed";
        rc = zoo_create(A.zh, ROOT "/rw", "0", 1, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        rc = zoo_remove_all_watches(A.zh, ROOT "/rw", ZWATCHTYPE_ANY, 0);
        EXPECT_RC(rc, ZNOWATCHER, "remove_all_watches with none -> ZNOWATCHER");
        blen = sizeof buf;
        zoo_wget(A.zh, ROOT "/rw", tagged_watcher, (void *)TAG, buf, &blen, NULL);
        rc = zoo_remove_all_watches(A.zh, ROOT "/rw", ZWATCHTYPE_DATA, 0);
        EXPECT_RC(rc, ZOK, "remove_all_watches data watch");
        zoo_set(B.zh, ROOT "/rw", "1", 1, -1);
        zoo_exists(A.zh, ROOT "/rw", 0, NULL);
        ms_sleep(200);
        char desc[512];
        check(pending_events(TAG, desc, sizeof desc) == 0,
              "removed watch does not fire", "events: %s", desc);
    }

    /* ---------- large payload ---------- */
    {
        int big = 200 * 1024;
        char *data = malloc(big), *back = malloc(big + 16);
        for (int i = 0; i < big; i++)
            data[i] = (char)(i * 31 + 7);
        rc = zoo_create(A.zh, ROOT "/big", data, big, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        EXPECT_RC(rc, ZOK, "create 200 KiB node");
        blen = big + 16;
        memset(&st2, 0, sizeof st2);
        rc = zoo_get(B.zh, ROOT "/big", 0, back, &blen, &st2);
        check(rc == ZOK && blen == big && memcmp(data, back, big) == 0 &&
                  st2.dataLength == big,
              "200 KiB round-trip", "rc=%d len=%d", rc, blen);
        free(data);
        free(back);
    }

    /* ---------- ACLs / digest auth ---------- */
    {
        struct ACL acl1[] = {{ZOO_PERM_ALL, {"digest", HASH1}}};
        struct ACL_vector av1 = {1, acl1};
        rc = zoo_create(A.zh, ROOT "/secret", "s3", 2, &av1, ZOO_PERSISTENT,
                        NULL, 0);
        EXPECT_RC(rc, ZOK, "create node with digest ACL");
        blen = sizeof buf;
        rc = zoo_get(A.zh, ROOT "/secret", 0, buf, &blen, NULL);
        EXPECT_RC(rc, ZNOAUTH, "get without auth -> ZNOAUTH");
        rc = zoo_set(A.zh, ROOT "/secret", "x", 1, -1);
        EXPECT_RC(rc, ZNOAUTH, "set without auth -> ZNOAUTH");
        rc = zoo_exists(A.zh, ROOT "/secret", 0, NULL);
        EXPECT_RC(rc, ZOK, "exists needs no permission");

        /* since 3.6 getACL needs READ or ADMIN */
        struct ACL_vector got = {0, NULL};
        rc = zoo_get_acl(A.zh, ROOT "/secret", &got, &st2);
        EXPECT_RC(rc, ZNOAUTH, "get_acl without auth -> ZNOAUTH");
        if (rc == ZOK)
            deallocate_ACL_vector(&got);

        rc = add_auth(B.zh, USER2 ":" PASS2);
        EXPECT_RC(rc, ZOK, "add_auth digest (other user)");
        blen = sizeof buf;
        rc = zoo_get(B.zh, ROOT "/secret", 0, buf, &blen, NULL);
        EXPECT_RC(rc, ZNOAUTH, "get with wrong identity -> ZNOAUTH");

        rc = add_auth(A.zh, USER1 ":" PASS1);
        EXPECT_RC(rc, ZOK, "add_auth digest");
        blen = sizeof buf;
        rc = zoo_get(A.zh, ROOT "/secret", 0, buf, &blen, NULL);
        check(rc == ZOK && blen == 2 && memcmp(buf, "s3", 2) == 0,
              "get with auth succeeds", "rc=%d (%s)", rc, zerror(rc));
        memset(&st2, 0, sizeof st2);
        got.count = 0;
        rc = zoo_get_acl(A.zh, ROOT "/secret", &got, &st2);
        EXPECT_RC(rc, ZOK, "get_acl with auth");
        check(rc == ZOK && got.count == 1 && got.data[0].perms == ZOO_PERM_ALL &&
                  strcmp(got.data[0].id.scheme, "digest") == 0 &&
                  strcmp(got.data[0].id.id, HASH1) == 0 && st2.aversion == 0 &&
                  st2.dataLength == 2,
              "get_acl returns digest ACL and stat", "count=%d", got.count);
        if (rc == ZOK)
            deallocate_ACL_vector(&got);

        /* CREATOR_ALL_ACL -> auth ids of the creator */
        rc = zoo_create(A.zh, ROOT "/mine", "m", 1, &ZOO_CREATOR_ALL_ACL,
                        ZOO_PERSISTENT, NULL, 0);
        EXPECT_RC(rc, ZOK, "create with ZOO_CREATOR_ALL_ACL after auth");
        rc = zoo_get_acl(A.zh, ROOT "/mine", &got, &st2);
        check(rc == ZOK && got.count == 1 &&
                  strcmp(got.data[0].id.scheme, "digest") == 0 &&
                  strcmp(got.data[0].id.id, HASH1) == 0 &&
                  got.data[0].perms == ZOO_PERM_ALL,
              "CREATOR_ALL_ACL expands to digest id", "rc=%d count=%d id=%s", rc,
              got.count, rc == ZOK && got.count ? got.data[0].id.id : "");
        if (rc == ZOK)
            deallocate_ACL_vector(&got);
        rc = zoo_create(B.zh, ROOT "/mine/x", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        EXPECT_RC(rc, ZNOAUTH, "create child without CREATE perm -> ZNOAUTH");

        /* read-only ACL for world, all for user1: set_acl version checks */
        struct ACL acl2[] = {{ZOO_PERM_READ, {"world", "anyone"}},
                             {ZOO_PERM_ALL, {"digest", HASH1}}};
        struct ACL_vector av2 = {2, acl2};
        rc = zoo_set_acl(A.zh, ROOT "/secret", 5, &av2);
        EXPECT_RC(rc, ZBADVERSION, "set_acl with wrong aversion -> ZBADVERSION");
        rc = zoo_set_acl(A.zh, ROOT "/secret", 0, &av2);
        EXPECT_RC(rc, ZOK, "set_acl with aversion 0");
        blen = sizeof buf;
        rc = zoo_get(B.zh, ROOT "/secret", 0, buf, &blen, NULL);
        EXPECT_RC(rc, ZOK, "world read allowed after set_acl");
        rc = zoo_set(B.zh, ROOT "/secret", "x", 1, -1);
        EXPECT_RC(rc, ZNOAUTH, "world write still denied");
        rc = zoo_get_acl(B.zh, ROOT "/secret", &got, &st2);
        check(rc == ZOK && got.count == 2 && st2.aversion == 1,
              "get_acl after set_acl (2 entries, aversion 1)",
              "rc=%d count=%d aversion=%d", rc, got.count, st2.aversion);
        if (rc == ZOK)
            deallocate_ACL_vector(&got);

        struct ACL bad[] = {{ZOO_PERM_ALL, {"nosuchscheme", "x"}}};
        struct ACL_vector avbad = {1, bad};
        rc = zoo_create(A.zh, ROOT "/badacl", NULL, 0, &avbad, ZOO_PERSISTENT,
                        NULL, 0);
        EXPECT_RC(rc, ZINVALIDACL, "create with unknown ACL scheme -> ZINVALIDACL");

        /* delete permission is checked on the parent */
        rc = zoo_delete(B.zh, ROOT "/mine", -1);
        EXPECT_RC(rc, ZOK, "delete checks parent ACL (open) not node ACL");
    }

    /* ---------- container / TTL ---------- */
    {
        memset(&st2, 0, sizeof st2);
        rc = zoo_create2(A.zh, ROOT "/cont", NULL, 0, &ZOO_OPEN_ACL_UNSAFE,
                         ZOO_CONTAINER, pbuf, sizeof pbuf, &st2);
        EXPECT_RC(rc, ZOK, "create ZOO_CONTAINER");
        /* the server stores 0x8000000000000000 internally but reports 0 */
        check(rc == ZOK && st2.ephemeralOwner == 0,
              "container create2 stat ephemeralOwner 0",
              "owner=0x%llx", (unsigned long long)st2.ephemeralOwner);
        rc = zoo_create(A.zh, ROOT "/cont/c1", "x", 1, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT, NULL, 0);
        EXPECT_RC(rc, ZOK, "create child of container");
        rc = zoo_exists(A.zh, ROOT "/cont", 0, &st2);
        check(rc == ZOK && st2.numChildren == 1 && st2.ephemeralOwner == 0,
              "container has child (exists stat, ephemeralOwner 0)",
              "rc=%d numChildren=%d owner=0x%llx", rc, st2.numChildren,
              (unsigned long long)st2.ephemeralOwner);

        memset(&st2, 0, sizeof st2);
        rc = zoo_create2_ttl(A.zh, ROOT "/ttl", "t", 1, &ZOO_OPEN_ACL_UNSAFE,
                             ZOO_PERSISTENT_WITH_TTL, 500, pbuf, sizeof pbuf,
                             &st2);
        EXPECT_RC(rc, ZOK, "create2_ttl PERSISTENT_WITH_TTL");
        /* TTL encoding of ephemeralOwner is internal too: clients see 0 */
        check(rc == ZOK && st2.ephemeralOwner == 0,
              "TTL create2 stat ephemeralOwner 0", "owner=0x%llx",
              (unsigned long long)st2.ephemeralOwner);
        memset(&st2, 0, sizeof st2);
        blen = sizeof buf;
        rc = zoo_get(A.zh, ROOT "/ttl", 0, buf, &blen, &st2);
        check(rc == ZOK && blen == 1 && st2.ephemeralOwner == 0,
              "TTL get (data, ephemeralOwner 0)", "rc=%d owner=0x%llx", rc,
              (unsigned long long)st2.ephemeralOwner);
        char tseq[512] = "";
        rc = zoo_create2_ttl(A.zh, ROOT "/ttlseq-", NULL, 0,
                             &ZOO_OPEN_ACL_UNSAFE,
                             ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL, 60000, tseq,
                             sizeof tseq, NULL);
        suf = strrchr(tseq, '-');
        check(rc == ZOK && suf && is_seq_suffix(suf + 1),
              "create2_ttl PERSISTENT_SEQUENTIAL_WITH_TTL", "rc=%d path=%s", rc,
              tseq);

        if (container_wait > 0) {
            rc = zoo_delete(A.zh, ROOT "/cont/c1", -1);
            EXPECT_RC(rc, ZOK, "empty the container");
            int gone_c = 0, gone_t = 0;
            for (int i = 0; i < container_wait * 10 && !(gone_c && gone_t);
                 i++) {
                ms_sleep(100);
                gone_c = zoo_exists(A.zh, ROOT "/cont", 0, NULL) == ZNONODE;
                gone_t = zoo_exists(A.zh, ROOT "/ttl", 0, NULL) == ZNONODE;
            }
            check(gone_c, "emptied container is reaped", "still present after %d s",
                  container_wait);
            check(gone_t, "expired TTL node is reaped", "still present after %d s",
                  container_wait);
            check(zoo_exists(A.zh, tseq, 0, NULL) == ZOK,
                  "unexpired TTL node survives", NULL);
        } else {
            printf("SKIP container/TTL reaping (use --container-wait S)\n");
        }
    }

    /* ---------- ephemeral disappears when its session closes ---------- */
    {
        static const char *TAG = "ephem";
        check(connect_to(&C, "C"), "connect C", "state=%d", C.state);
        const clientid_t *cidC = zoo_client_id(C.zh);
        long long sidC = cidC ? cidC->client_id : 0;
        check(sidC != 0 && sidC != cidA->client_id, "distinct session ids",
              NULL);
        rc = zoo_create(C.zh, ROOT "/eph", "e", 1, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL, NULL, 0);
        EXPECT_RC(rc, ZOK, "create ephemeral in session C");
        memset(&st2, 0, sizeof st2);
        rc = zoo_wexists(A.zh, ROOT "/eph", tagged_watcher, (void *)TAG, &st2);
        check(rc == ZOK && st2.ephemeralOwner == sidC,
              "other session sees ephemeralOwner of C", "rc=%d owner=%llx",
              rc, (long long)st2.ephemeralOwner);
        rc = zookeeper_close(C.zh);
        EXPECT_RC(rc, ZOK, "zookeeper_close C");
        check(wait_event(TAG, ZOO_DELETED_EVENT, ROOT "/eph", WAIT_MS),
              "ephemeral deleted on close (ZOO_DELETED_EVENT)", NULL);
        rc = zoo_exists(B.zh, ROOT "/eph", 0, NULL);
        EXPECT_RC(rc, ZNONODE, "ephemeral gone for second session");
    }

    /* ephemerals of A (seq children) vanish after A closes, seen by B */
    clientid_t savedA = *cidA;
    rc = zookeeper_close(A.zh);
    EXPECT_RC(rc, ZOK, "zookeeper_close A");
    {
        struct String_vector kv = {0, NULL};
        int n = -1;
        for (int i = 0; i < 50; i++) {
            if (zoo_get_children(B.zh, ROOT "/seq", 0, &kv) == ZOK) {
                n = kv.count;
                deallocate_String_vector(&kv);
                if (n == 0)
                    break;
            }
            ms_sleep(100);
        }
        check(n == 0, "A's sequential ephemerals removed after close",
              "children=%d", n);
    }

    /* reattaching to a closed session yields ZOO_EXPIRED_SESSION_STATE */
    {
        struct conn D = {0};
        D.name = "D";
        zoo_set_debug_level((ZooLogLevel)0); /* the client logs the expiry */
        D.zh = zookeeper_init(hostport, default_watcher, 10000, &savedA, &D, 0);
        struct timespec ts;
        deadline_in(&ts, WAIT_MS);
        pthread_mutex_lock(&ev_mu);
        while (D.zh && D.state != ZOO_EXPIRED_SESSION_STATE) {
            if (pthread_cond_timedwait(&ev_cv, &ev_mu, &ts) == ETIMEDOUT)
                break;
        }
        int st = D.state;
        pthread_mutex_unlock(&ev_mu);
        check(st == ZOO_EXPIRED_SESSION_STATE,
              "reattach to closed session -> ZOO_EXPIRED_SESSION_STATE",
              "state=%d", st);
        if (D.zh)
            zookeeper_close(D.zh);
        zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    }

    rmr(B.zh, ROOT);
    rc = zoo_exists(B.zh, ROOT, 0, NULL);
    EXPECT_RC(rc, ZNONODE, "cleanup " ROOT);
    zookeeper_close(B.zh);

    printf("%d passed, %d failed\n", passed, failed);
    if (failed) {
        printf("FAILED: %s\n", failed_names);
        return 1;
    }
    return 0;
}
