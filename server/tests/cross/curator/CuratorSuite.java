// Cross-client conformance suite: Apache Curator 5 (Java) framework + recipes.
//
// Usage: java -cp <curator, zookeeper, guava, slf4j jars>:<classes> CuratorSuite HOST:PORT
//
// Every check asserts exact values / orders observed against a standalone
// Apache ZooKeeper 3.8 server started with -Dzookeeper.extendedTypesEnabled=true
// (and znode.container.checkIntervalMs=1000 for the container/TTL reaping
// checks).  Every wait is bounded by a few seconds and a watchdog ends the
// whole run after 120 s.  All work happens under ROOT, removed at start and end.
//
// Prints "ok   NAME" / "FAIL NAME: reason" per check (and "skip NAME: reason"
// when the server has TTL nodes disabled), then exactly one summary line
// "N passed, M failed".  Exit status is 0 only when every check passed.

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.cache.TreeCacheEvent;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.recipes.nodes.PersistentTtlNode;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public class CuratorSuite {
    static final String ROOT = "/curator_suite";
    // Bound for every wait on the server; generous because CI shares 2 cores between
    // herd, the JVM and the build (a loaded run once needed more than 5 s).
    static final long TIMEOUT_MS = 10000;
    static final long SETTLE_MS = 400;       // time given to prove something does NOT happen
    static final long GLOBAL_DEADLINE_S = 120;

    static String hostPort;
    static int passed = 0, failed = 0;
    static final List<String> failedNames = new ArrayList<>();
    static final List<CuratorFramework> clients = new CopyOnWriteArrayList<>();

    // ------------------------------------------------------------------ helpers

    interface Body { void run() throws Exception; }

    static class CheckFailed extends RuntimeException {
        CheckFailed(String m) { super(m); }
    }

    static void check(String name, Body body) {
        long t = System.nanoTime();
        try {
            body.run();
            passed++;
            System.out.printf("ok   %s (%d ms)%n", name, (System.nanoTime() - t) / 1_000_000);
        } catch (Skip s) {
            System.out.printf("skip %s: %s%n", name, s.getMessage());
        } catch (Throwable e) {
            failed++;
            failedNames.add(name);
            String msg = (e instanceof CheckFailed) ? e.getMessage() : e.toString();
            System.out.printf("FAIL %s: %s%n", name, msg);
            if (!(e instanceof CheckFailed)) {
                e.printStackTrace(System.out);
            }
        }
        System.out.flush();
    }

    static class Skip extends RuntimeException {
        Skip(String m) { super(m); }
    }

    static void eq(Object actual, Object expected, String what) {
        boolean same = (actual instanceof byte[] && expected instanceof byte[])
                ? Arrays.equals((byte[]) actual, (byte[]) expected)
                : java.util.Objects.equals(actual, expected);
        if (!same) {
            throw new CheckFailed(what + ": expected " + show(expected) + ", got " + show(actual));
        }
    }

    static String show(Object o) {
        if (o instanceof byte[]) return "b\"" + new String((byte[]) o, StandardCharsets.UTF_8) + "\"";
        if (o instanceof String) return "\"" + o + "\"";
        return String.valueOf(o);
    }

    static void truth(boolean cond, String what) {
        if (!cond) throw new CheckFailed(what);
    }

    static void waitUntil(BooleanSupplier pred, String what) throws InterruptedException {
        waitUntil(pred, what, TIMEOUT_MS);
    }

    static void waitUntil(BooleanSupplier pred, String what, long timeoutMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            if (pred.getAsBoolean()) return;
            Thread.sleep(20);
        }
        if (pred.getAsBoolean()) return;
        throw new CheckFailed("timed out after " + timeoutMs + " ms waiting for " + what);
    }

    /** Expects fn to throw a KeeperException with the given code. */
    static KeeperException expectKeeper(KeeperException.Code code, Body fn, String what) throws Exception {
        try {
            fn.run();
        } catch (KeeperException e) {
            eq(e.code(), code, what + " error code");
            return e;
        }
        throw new CheckFailed(what + ": expected KeeperException " + code + ", nothing thrown");
    }

    static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String s(byte[] d) { return d == null ? null : new String(d, StandardCharsets.UTF_8); }
    static String p(String... parts) { return ROOT + "/" + String.join("/", parts); }
    static String rel(String path) { return path.startsWith(ROOT) ? path.substring(ROOT.length()) : path; }

    static CuratorFramework newClient() throws InterruptedException {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(hostPort)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(5000)
                .retryPolicy(new RetryNTimes(3, 200))
                .build();
        clients.add(c);
        c.start();
        if (!c.blockUntilConnected(5, TimeUnit.SECONDS)) {
            throw new CheckFailed("client did not connect within 5 s");
        }
        return c;
    }

    static void closeClient(CuratorFramework c) {
        try { c.close(); } catch (Throwable ignored) { }
        clients.remove(c);
    }

    static long sessionId(CuratorFramework c) throws Exception {
        return c.getZookeeperClient().getZooKeeper().getSessionId();
    }

    static List<String> sortedChildren(CuratorFramework c, String path) throws Exception {
        List<String> l = new ArrayList<>(c.getChildren().forPath(path));
        Collections.sort(l);
        return l;
    }

    static Thread runThread(String name, Body body, AtomicReference<Throwable> err) {
        Thread t = new Thread(() -> {
            try { body.run(); } catch (Throwable e) { err.compareAndSet(null, e); }
        }, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    static void join(Thread t, AtomicReference<Throwable> err) throws Exception {
        t.join(TIMEOUT_MS);
        truth(!t.isAlive(), "thread " + t.getName() + " still running after " + TIMEOUT_MS + " ms");
        if (err.get() != null) throw new CheckFailed("thread " + t.getName() + ": " + err.get());
    }

    /** Watcher that records "Type relpath" strings. */
    static class Recorder implements Watcher {
        final BlockingQueue<String> q = new LinkedBlockingQueue<>();
        final List<String> all = new CopyOnWriteArrayList<>();
        @Override public void process(WatchedEvent e) {
            if (e.getType() == Event.EventType.None) return;
            String r = e.getType() + " " + rel(e.getPath());
            all.add(r);
            q.add(r);
        }
        List<String> take(int n) throws InterruptedException {
            List<String> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (got.size() < n) {
                String e = q.poll(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                if (e == null) throw new CheckFailed("timed out waiting for " + n + " events, got " + got);
                got.add(e);
            }
            return got;
        }
        void expectNothing() throws InterruptedException {
            String e = q.poll(SETTLE_MS, TimeUnit.MILLISECONDS);
            if (e != null) throw new CheckFailed("unexpected extra event " + e);
        }
    }

    /** A TCP proxy to the server that can cut every connection through it, as a
     *  network failure would: the client loses its connection, the server keeps the session. */
    static class Proxy implements AutoCloseable {
        final ServerSocket listener;
        final List<Socket> open = new CopyOnWriteArrayList<>();

        Proxy(String target) throws Exception {
            String host = target.substring(0, target.lastIndexOf(':'));
            int port = Integer.parseInt(target.substring(target.lastIndexOf(':') + 1));
            listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            Thread t = new Thread(() -> {
                try {
                    while (true) {
                        Socket client = listener.accept();
                        Socket server = new Socket(host, port);
                        open.add(client);
                        open.add(server);
                        pump(client, server);
                        pump(server, client);
                    }
                } catch (Exception done) { }
            }, "proxy");
            t.setDaemon(true);
            t.start();
        }

        String addr() { return "127.0.0.1:" + listener.getLocalPort(); }

        static void pump(Socket from, Socket to) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[65536];
                try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                    int n;
                    while ((n = in.read(buf)) > 0) out.write(buf, 0, n);
                } catch (Exception done) { }
                try { from.close(); } catch (Exception ignored) { }
                try { to.close(); } catch (Exception ignored) { }
            }, "pump");
            t.setDaemon(true);
            t.start();
        }

        void cut() {
            for (Socket s : open) {
                try { s.close(); } catch (Exception ignored) { }
            }
            open.clear();
        }

        @Override public void close() throws Exception {
            listener.close();
            cut();
        }
    }

    /** A plain ZooKeeper handle, connected, its connection states recorded. */
    static ZooKeeper zookeeper(String connect, List<Watcher.Event.KeeperState> states) throws Exception {
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connect, 20000, e -> {
            if (e.getType() == Watcher.Event.EventType.None) {
                states.add(e.getState());
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) up.countDown();
            }
        });
        truth(up.await(TIMEOUT_MS, TimeUnit.MILLISECONDS), "ZooKeeper handle connected");
        return zk;
    }

    static void cleanup(CuratorFramework c) throws Exception {
        if (c.checkExists().forPath(ROOT) != null) {
            c.delete().deletingChildrenIfNeeded().forPath(ROOT);
        }
    }

    // ------------------------------------------------------------------ main

    public static void main(String[] args) throws Exception {
        if (args.length != 1 || !args[0].contains(":")) {
            System.err.println("usage: CuratorSuite HOST:PORT");
            System.exit(2);
        }
        hostPort = args[0];
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(GLOBAL_DEADLINE_S * 1000); } catch (InterruptedException e) { return; }
            System.out.println("FAIL watchdog: suite exceeded " + GLOBAL_DEADLINE_S + " s");
            System.out.println(passed + " passed, " + (failed + 1) + " failed");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        long start = System.currentTimeMillis();
        CuratorFramework[] main = new CuratorFramework[1];
        check("connect_and_block_until_connected", () -> {
            CuratorFramework c = CuratorFrameworkFactory.builder()
                    .connectString(hostPort).sessionTimeoutMs(10000).connectionTimeoutMs(5000)
                    .retryPolicy(new RetryNTimes(3, 200)).build();
            clients.add(c);
            List<ConnectionState> states = new CopyOnWriteArrayList<>();
            c.getConnectionStateListenable().addListener((cl, st) -> states.add(st));
            c.start();
            truth(c.blockUntilConnected(5, TimeUnit.SECONDS), "blockUntilConnected(5s) returned false");
            truth(c.getZookeeperClient().isConnected(), "isConnected() false after blockUntilConnected");
            waitUntil(() -> !states.isEmpty(), "CONNECTED state event");
            eq(states.get(0), ConnectionState.CONNECTED, "first connection state");
            truth(sessionId(c) != 0, "session id is 0");
            eq(c.getZookeeperClient().getZooKeeper().getSessionTimeout(), 10000, "negotiated session timeout");
            Stat st = c.checkExists().forPath("/");
            truth(st != null, "checkExists(/) returned null");
            truth(c.checkExists().forPath("/zookeeper") != null, "/zookeeper missing");
            cleanup(c);
            c.create().forPath(ROOT);
            main[0] = c;
        });
        if (main[0] == null) {
            System.out.println(passed + " passed, " + failed + " failed");
            System.exit(1);
        }
        CuratorFramework c = main[0];

        check("create_creating_parents_if_needed", () -> {
            String leaf = p("cp", "a", "b", "c");
            expectKeeper(KeeperException.Code.NONODE, () -> c.create().forPath(leaf, b("x")), "create without parents");
            eq(c.create().creatingParentsIfNeeded().forPath(leaf, b("x")), leaf, "returned path");
            eq(c.getData().forPath(leaf), b("x"), "leaf data");
            eq(c.getData().forPath(p("cp", "a", "b")), new byte[0], "parent data");
            Stat st = c.checkExists().forPath(p("cp", "a"));
            eq(st.getNumChildren(), 1, "a numChildren");
            eq(st.getEphemeralOwner(), 0L, "parent ephemeralOwner");
            eq(st.getDataLength(), 0, "parent dataLength");
            expectKeeper(KeeperException.Code.NODEEXISTS,
                    () -> c.create().creatingParentsIfNeeded().forPath(leaf, b("y")), "create existing");
            // parents already present: only the leaf is created
            eq(c.create().creatingParentsIfNeeded().forPath(p("cp", "a", "b", "d")), p("cp", "a", "b", "d"), "sibling");
            eq(sortedChildren(c, p("cp", "a", "b")), Arrays.asList("c", "d"), "children of b");
            // orSetData on an existing node
            c.create().orSetData().forPath(leaf, b("z"));
            Stat st2 = new Stat();
            eq(c.getData().storingStatIn(st2).forPath(leaf), b("z"), "orSetData data");
            eq(st2.getVersion(), 1, "orSetData version");
        });

        check("ephemeral_sequential_naming", () -> {
            CuratorFramework c2 = newClient();
            String dir = p("seq");
            c.create().forPath(dir);
            String a = c2.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(dir + "/n-", b("a"));
            String bb = c2.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(dir + "/n-", b("b"));
            String cc = c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(dir + "/p-");
            eq(a, dir + "/n-0000000000", "first ephemeral sequential");
            eq(bb, dir + "/n-0000000001", "second ephemeral sequential");
            eq(cc, dir + "/p-0000000002", "persistent sequential shares the parent counter");
            Stat st = c.checkExists().forPath(a);
            eq(st.getEphemeralOwner(), sessionId(c2), "ephemeralOwner");
            eq(c.checkExists().forPath(cc).getEphemeralOwner(), 0L, "persistent ephemeralOwner");
            Stat ds = c.checkExists().forPath(dir);
            eq(ds.getCversion(), 3, "parent cversion");
            eq(ds.getNumChildren(), 3, "parent numChildren");
            // protected mode: _c_<uuid>-n-<seq>
            String prot = c2.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(dir + "/n-");
            truth(Pattern.matches(Pattern.quote(dir) + "/_c_[0-9a-f-]{36}-n-0000000003", prot),
                    "protected name has unexpected form: " + prot);
            expectKeeper(KeeperException.Code.NOCHILDRENFOREPHEMERALS,
                    () -> c2.create().forPath(a + "/child"), "child of ephemeral");
            closeClient(c2);
            eq(sortedChildren(c, dir), Arrays.asList("p-0000000002"), "children after ephemeral owner closed");
        });

        check("set_get_data_versions", () -> {
            String n = p("ver");
            c.create().forPath(n, b("v0"));
            Stat st = new Stat();
            eq(c.getData().storingStatIn(st).forPath(n), b("v0"), "initial data");
            eq(st.getVersion(), 0, "initial version");
            eq(st.getCzxid(), st.getMzxid(), "czxid == mzxid");
            Stat s1 = c.setData().withVersion(0).forPath(n, b("v1"));
            eq(s1.getVersion(), 1, "version after setData(v0)");
            eq(s1.getDataLength(), 2, "dataLength");
            truth(s1.getMzxid() > s1.getCzxid(), "mzxid advanced");
            expectKeeper(KeeperException.Code.BADVERSION,
                    () -> c.setData().withVersion(0).forPath(n, b("bad")), "setData stale version");
            eq(c.getData().forPath(n), b("v1"), "data unchanged after BadVersion");
            Stat s2 = c.setData().forPath(n, b("v2-longer"));
            eq(s2.getVersion(), 2, "version after unconditional setData");
            eq(s2.getDataLength(), 9, "dataLength v2");
            Stat s3 = c.setData().withVersion(2).forPath(n, new byte[0]);
            eq(s3.getVersion(), 3, "version after empty setData");
            eq(c.getData().forPath(n), new byte[0], "empty data");
            expectKeeper(KeeperException.Code.BADVERSION,
                    () -> c.delete().withVersion(1).forPath(n), "delete stale version");
            expectKeeper(KeeperException.Code.NONODE,
                    () -> c.setData().forPath(p("ver-missing"), b("x")), "setData missing node");
            c.delete().withVersion(3).forPath(n);
            eq(c.checkExists().forPath(n), null, "exists after delete");
            expectKeeper(KeeperException.Code.NONODE, () -> c.delete().forPath(n), "delete twice");
            // guaranteed + quietly delete of a missing node does not throw
            c.delete().quietly().forPath(n);
            c.create().forPath(n);
            c.create().forPath(n + "/kid");
            expectKeeper(KeeperException.Code.NOTEMPTY, () -> c.delete().forPath(n), "delete non-empty");
            c.delete().deletingChildrenIfNeeded().forPath(n);
            eq(c.checkExists().forPath(n), null, "exists after deletingChildrenIfNeeded");
        });

        check("one_shot_data_watch", () -> {
            String n = p("w1");
            c.create().forPath(n, b("a"));
            Recorder r = new Recorder();
            c.getData().usingWatcher(r).forPath(n);
            c.checkExists().usingWatcher(r).forPath(p("w1-missing"));
            c.getChildren().usingWatcher(r).forPath(n);
            c.setData().forPath(n, b("b"));
            c.setData().forPath(n, b("c"));
            c.create().forPath(p("w1-missing"));
            c.create().forPath(n + "/k");
            List<String> got = r.take(3);
            eq(got, Arrays.asList("NodeDataChanged /w1", "NodeCreated /w1-missing", "NodeChildrenChanged /w1"),
                    "one-shot events");
            r.expectNothing();
        });

        check("transaction_success_results", () -> {
            String d = p("tx");
            c.create().forPath(d);
            List<CuratorOp> ops = Arrays.asList(
                    c.transactionOp().create().forPath(d + "/a", b("1")),
                    c.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(d + "/s-", b("s")),
                    c.transactionOp().setData().withVersion(0).forPath(d + "/a", b("2")),
                    c.transactionOp().check().withVersion(1).forPath(d + "/a"),
                    c.transactionOp().create().forPath(d + "/b"),
                    c.transactionOp().delete().withVersion(0).forPath(d + "/b"));
            List<CuratorTransactionResult> res = c.transaction().forOperations(ops);
            eq(res.size(), 6, "result count");
            List<String> summary = res.stream()
                    .map(x -> x.getType() + " " + rel(x.getForPath()) + " -> " + (x.getResultPath() == null ? "null" : rel(x.getResultPath())) + " err=" + x.getError())
                    .collect(Collectors.toList());
            eq(summary, Arrays.asList(
                    "CREATE /tx/a -> /tx/a err=0",
                    "CREATE /tx/s- -> /tx/s-0000000001 err=0",
                    "SET_DATA /tx/a -> null err=0",
                    "CHECK /tx/a -> null err=0",
                    "CREATE /tx/b -> /tx/b err=0",
                    "DELETE /tx/b -> null err=0"), "per-op results");
            Stat setStat = res.get(2).getResultStat();
            truth(setStat != null, "setData result has no stat");
            eq(setStat.getVersion(), 1, "setData result stat version");
            eq(setStat.getDataLength(), 1, "setData result stat dataLength");
            // all ops share one zxid
            Stat as = c.checkExists().forPath(d + "/a");
            eq(as.getMzxid(), as.getCzxid(), "a: created and modified in one transaction (same zxid)");
            eq(setStat.getMzxid(), as.getMzxid(), "result stat mzxid");
            eq(c.getData().forPath(d + "/a"), b("2"), "a data");
            eq(sortedChildren(c, d), Arrays.asList("a", "s-0000000001"), "children after transaction");
            eq(c.checkExists().forPath(d).getCversion(), 4, "parent cversion after 3 creates + 1 delete");
        });

        check("transaction_failure_results", () -> {
            String d = p("tx");
            Stat before = c.checkExists().forPath(d);
            List<CuratorOp> ops = Arrays.asList(
                    c.transactionOp().create().forPath(d + "/c", b("c")),
                    c.transactionOp().setData().withVersion(99).forPath(d + "/a", b("bad")),
                    c.transactionOp().create().forPath(d + "/d"));
            KeeperException ke = expectKeeper(KeeperException.Code.BADVERSION,
                    () -> c.transaction().forOperations(ops), "failed transaction");
            List<OpResult> results = ke.getResults();
            truth(results != null, "KeeperException.getResults() is null");
            List<String> codes = new ArrayList<>();
            for (OpResult r : results) {
                codes.add(r instanceof OpResult.ErrorResult
                        ? "error " + ((OpResult.ErrorResult) r).getErr() : r.getClass().getSimpleName());
            }
            eq(codes, Arrays.asList("error 0", "error -103", "error -2"), "per-op error results");
            eq(c.checkExists().forPath(d + "/c"), null, "c must not exist after rollback");
            eq(c.getData().forPath(d + "/a"), b("2"), "a unchanged after rollback");
            Stat after = c.checkExists().forPath(d);
            eq(after.getCversion(), before.getCversion(), "parent cversion unchanged");
            eq(after.getPzxid(), before.getPzxid(), "parent pzxid unchanged");

            // a failing check op, and a create of an existing node
            List<CuratorOp> ops2 = Arrays.asList(
                    c.transactionOp().check().withVersion(1).forPath(d + "/a"),
                    c.transactionOp().create().forPath(d + "/a"));
            KeeperException ke2 = expectKeeper(KeeperException.Code.NODEEXISTS,
                    () -> c.transaction().forOperations(ops2), "create-existing transaction");
            List<String> codes2 = new ArrayList<>();
            for (OpResult r : ke2.getResults()) codes2.add("error " + ((OpResult.ErrorResult) r).getErr());
            eq(codes2, Arrays.asList("error 0", "error -110"), "per-op results (NodeExists)");

            // background form: CuratorEvent carries the result code and per-op results
            CountDownLatch done = new CountDownLatch(1);
            AtomicReference<String> got = new AtomicReference<>();
            c.transaction().inBackground((cl, ev) -> {
                StringBuilder sb = new StringBuilder("rc=" + ev.getResultCode());
                if (ev.getOpResults() != null) {
                    for (CuratorTransactionResult r : ev.getOpResults()) {
                        sb.append(" ").append(r.getType()).append(":").append(r.getError());
                    }
                }
                got.set(sb.toString());
                done.countDown();
            }).forOperations(Arrays.asList(
                    c.transactionOp().create().forPath(d + "/e"),
                    c.transactionOp().delete().forPath(d + "/missing")));
            truth(done.await(TIMEOUT_MS, TimeUnit.MILLISECONDS), "background transaction callback not called");
            eq(got.get(), "rc=-101 CREATE:0 DELETE:-101", "background failure result");
            eq(c.checkExists().forPath(d + "/e"), null, "e must not exist");
        });

        check("namespace", () -> {
            CuratorFramework ns = c.usingNamespace("curator_suite/ns");
            eq(ns.create().creatingParentsIfNeeded().forPath("/x/y", b("1")), "/x/y", "namespaced returned path");
            eq(c.getData().forPath(p("ns", "x", "y")), b("1"), "real path data");
            eq(ns.getChildren().forPath("/"), Arrays.asList("x"), "namespace root children");
        });

        check("inter_process_mutex", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient(), c3 = newClient();
            String lp = p("lock");
            InterProcessMutex m1 = new InterProcessMutex(c1, lp);
            InterProcessMutex m2 = new InterProcessMutex(c2, lp);
            InterProcessMutex m3 = new InterProcessMutex(c3, lp);
            List<String> order = new CopyOnWriteArrayList<>();
            truth(m1.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS), "m1 acquire");
            order.add("c1 acquired");
            // reentrant
            truth(m1.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS), "m1 re-acquire");
            truth(m1.isAcquiredInThisProcess(), "m1 isAcquiredInThisProcess");
            eq(c.getChildren().forPath(lp).size(), 1, "one lock node after reentrant acquire");
            truth(!m2.acquire(300, TimeUnit.MILLISECONDS), "m2 acquired while m1 holds the lock");
            order.add("c2 timed out");
            eq(c.getChildren().forPath(lp).size(), 1, "timed-out waiter removed its node");
            AtomicReference<Throwable> err = new AtomicReference<>();
            Thread t2 = runThread("m2", () -> {
                truth(m2.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS), "m2 acquire");
                order.add("c2 acquired");
                Thread.sleep(200);
                order.add("c2 releasing");
                m2.release();
            }, err);
            waitUntil(() -> { try { return m1.getParticipantNodes().size() == 2; } catch (Exception e) { return false; } },
                    "2 participants");
            Thread t3 = runThread("m3", () -> {
                truth(m3.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS), "m3 acquire");
                order.add("c3 acquired");
                m3.release();
            }, err);
            waitUntil(() -> { try { return m1.getParticipantNodes().size() == 3; } catch (Exception e) { return false; } },
                    "3 participants");
            List<String> nodes = new ArrayList<>(m1.getParticipantNodes());
            for (String n : nodes) {
                truth(Pattern.matches(Pattern.quote(lp) + "/_c_[0-9a-f-]{36}-lock-\\d{10}", n), "lock node name " + n);
            }
            Thread.sleep(SETTLE_MS);
            eq(order, Arrays.asList("c1 acquired", "c2 timed out"), "nobody else holds the lock yet");
            order.add("c1 releasing");
            m1.release();
            truth(m1.isAcquiredInThisProcess(), "still held after one of two releases");
            Thread.sleep(SETTLE_MS);
            eq(order.size(), 3, "waiters must not acquire before the final release");
            m1.release();
            join(t2, err);
            join(t3, err);
            eq(order, Arrays.asList("c1 acquired", "c2 timed out", "c1 releasing",
                    "c2 acquired", "c2 releasing", "c3 acquired"), "lock order");
            waitUntil(() -> { try { return c.getChildren().forPath(lp).isEmpty(); } catch (Exception e) { return false; } },
                    "lock nodes gone");
            closeClient(c1); closeClient(c2); closeClient(c3);
        });

        check("semaphore_v2_two_leases", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String sp = p("sem");
            InterProcessSemaphoreV2 s1 = new InterProcessSemaphoreV2(c1, sp, 2);
            InterProcessSemaphoreV2 s2 = new InterProcessSemaphoreV2(c2, sp, 2);
            Lease l1 = s1.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            Lease l2 = s2.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            truth(l1 != null && l2 != null, "two leases granted");
            eq(s1.getParticipantNodes().size(), 2, "participants");
            eq(s2.acquire(300, TimeUnit.MILLISECONDS), null, "third lease granted");
            AtomicReference<Lease> l3 = new AtomicReference<>();
            AtomicReference<Throwable> err = new AtomicReference<>();
            Thread t = runThread("sem3", () -> l3.set(s2.acquire(TIMEOUT_MS, TimeUnit.MILLISECONDS)), err);
            Thread.sleep(SETTLE_MS);
            eq(l3.get(), null, "third lease before a release");
            s1.returnLease(l1);
            join(t, err);
            truth(l3.get() != null, "third lease after a release");
            s2.returnLease(l2);
            s2.returnLease(l3.get());
            closeClient(c1); closeClient(c2);
        });

        check("leader_latch", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String lp = p("latch");
            LeaderLatch a = new LeaderLatch(c1, lp, "p1");
            LeaderLatch bl = new LeaderLatch(c2, lp, "p2");
            List<String> ev = new CopyOnWriteArrayList<>();
            bl.addListener(new LeaderLatchListener() {
                public void isLeader() { ev.add("p2 isLeader"); }
                public void notLeader() { ev.add("p2 notLeader"); }
            });
            a.start();
            truth(a.await(TIMEOUT_MS, TimeUnit.MILLISECONDS), "p1 await leadership");
            bl.start();
            waitUntil(() -> { try { return a.getParticipants().size() == 2; } catch (Exception e) { return false; } },
                    "2 latch participants");
            truth(!bl.await(300, TimeUnit.MILLISECONDS), "p2 became leader while p1 leads");
            truth(a.hasLeadership(), "p1 hasLeadership");
            truth(!bl.hasLeadership(), "p2 hasLeadership");
            eq(bl.getLeader().getId(), "p1", "leader seen by p2");
            List<String> parts = new ArrayList<>();
            for (Participant pt : bl.getParticipants()) parts.add(pt.getId() + ":" + pt.isLeader());
            eq(parts, Arrays.asList("p1:true", "p2:false"), "participants in order");
            List<String> kids = sortedChildren(c, lp);
            eq(kids.size(), 2, "latch nodes");
            truth(Pattern.matches("_c_[0-9a-f-]{36}-latch-0000000000", kids.get(0))
                    || Pattern.matches("_c_[0-9a-f-]{36}-latch-0000000000", kids.get(1)), "first latch node name " + kids);
            eq(c.getData().forPath(lp + "/" + kids.get(0)).length > 0, true, "latch node holds the participant id");
            a.close(LeaderLatch.CloseMode.SILENT);
            truth(bl.await(TIMEOUT_MS, TimeUnit.MILLISECONDS), "p2 leadership after p1 closed");
            eq(bl.getLeader().getId(), "p2", "new leader");
            parts.clear();
            for (Participant pt : bl.getParticipants()) parts.add(pt.getId() + ":" + pt.isLeader());
            eq(parts, Arrays.asList("p2:true"), "participants after p1 closed");
            waitUntil(() -> ev.size() >= 1, "p2 isLeader callback");
            eq(ev, Arrays.asList("p2 isLeader"), "p2 listener events");
            bl.close(LeaderLatch.CloseMode.NOTIFY_LEADER);
            waitUntil(() -> ev.size() >= 2, "p2 notLeader callback");
            eq(ev, Arrays.asList("p2 isLeader", "p2 notLeader"), "p2 listener events after close");
            waitUntil(() -> { try { return c.getChildren().forPath(lp).isEmpty(); } catch (Exception e) { return false; } },
                    "latch nodes gone after both closed");
            closeClient(c1); closeClient(c2);
        });

        check("leader_selector", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String lp = p("selector");
            List<String> order = new CopyOnWriteArrayList<>();
            CountDownLatch release1 = new CountDownLatch(1), release2 = new CountDownLatch(1);
            LeaderSelector s1 = new LeaderSelector(c1, lp, new LeaderSelectorListenerAdapter() {
                public void takeLeadership(CuratorFramework cf) throws Exception {
                    order.add("s1 leads");
                    release1.await(TIMEOUT_MS * 2, TimeUnit.MILLISECONDS);
                    order.add("s1 done");
                }
            });
            LeaderSelector s2 = new LeaderSelector(c2, lp, new LeaderSelectorListenerAdapter() {
                public void takeLeadership(CuratorFramework cf) throws Exception {
                    order.add("s2 leads");
                    release2.await(TIMEOUT_MS * 2, TimeUnit.MILLISECONDS);
                    order.add("s2 done");
                }
            });
            s1.setId("s1");
            s2.setId("s2");
            s1.start();
            waitUntil(() -> order.contains("s1 leads"), "s1 leadership");
            s2.start();
            waitUntil(() -> { try { return s1.getParticipants().size() == 2; } catch (Exception e) { return false; } },
                    "2 selector participants");
            Thread.sleep(SETTLE_MS);
            eq(order, Arrays.asList("s1 leads"), "only s1 leads");
            truth(s1.hasLeadership() && !s2.hasLeadership(), "hasLeadership flags");
            eq(s2.getLeader().getId(), "s1", "leader id seen by s2");
            List<String> parts = new ArrayList<>();
            for (Participant pt : s2.getParticipants()) parts.add(pt.getId() + ":" + pt.isLeader());
            eq(parts, Arrays.asList("s1:true", "s2:false"), "selector participants");
            release1.countDown();
            waitUntil(() -> order.contains("s2 leads"), "s2 leadership after s1 returned");
            eq(order, Arrays.asList("s1 leads", "s1 done", "s2 leads"), "selector order");
            eq(s1.getLeader().getId(), "s2", "leader id after hand-over");
            release2.countDown();
            waitUntil(() -> order.contains("s2 done"), "s2 done");
            s1.close();
            s2.close();
            waitUntil(() -> { try { return c.getChildren().forPath(lp).isEmpty(); } catch (Exception e) { return false; } },
                    "selector nodes gone");
            closeClient(c1); closeClient(c2);
        });

        check("distributed_atomic_long", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String ap = p("counter");
            DistributedAtomicLong d1 = new DistributedAtomicLong(c1, ap, new RetryNTimes(50, 5));
            DistributedAtomicLong d2 = new DistributedAtomicLong(c2, ap, new RetryNTimes(50, 5));
            AtomicValue<Long> v = d1.increment();
            truth(v.succeeded(), "first increment succeeded");
            eq(v.preValue(), 0L, "preValue");
            eq(v.postValue(), 1L, "postValue");
            AtomicReference<Throwable> err = new AtomicReference<>();
            AtomicInteger retries = new AtomicInteger();
            Body inc20a = () -> { for (int i = 0; i < 20; i++) { while (!d1.increment().succeeded()) retries.incrementAndGet(); } };
            Body inc20b = () -> { for (int i = 0; i < 20; i++) { while (!d2.increment().succeeded()) retries.incrementAndGet(); } };
            Thread ta = runThread("inc-a", inc20a, err), tb = runThread("inc-b", inc20b, err);
            join(ta, err);
            join(tb, err);
            eq(d2.get().postValue(), 41L, "value after 41 increments");
            eq(c.getData().forPath(ap), ByteBuffer.allocate(8).putLong(41L).array(), "raw 8-byte big-endian value");
            AtomicValue<Long> cas = d1.compareAndSet(41L, 100L);
            truth(cas.succeeded(), "CAS 41->100");
            AtomicValue<Long> cas2 = d2.compareAndSet(41L, 7L);
            truth(!cas2.succeeded(), "stale CAS succeeded");
            eq(d1.add(-50L).postValue(), 50L, "add(-50)");
            eq(d2.get().postValue(), 50L, "final value");
            closeClient(c1); closeClient(c2);
        });

        check("shared_count", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String sp = p("shared");
            SharedCount a = new SharedCount(c1, sp, 10);
            SharedCount bc = new SharedCount(c2, sp, 99);
            List<Integer> seen = new CopyOnWriteArrayList<>();
            bc.addListener(new SharedCountListener() {
                public void countHasChanged(SharedCountReader r, int n) { seen.add(n); }
                public void stateChanged(CuratorFramework cf, ConnectionState st) { }
            });
            a.start();
            bc.start();
            eq(bc.getCount(), 10, "seed value of first starter wins");
            VersionedValue<Integer> vv = a.getVersionedValue();
            eq(vv.getVersion(), 0, "initial version");
            truth(a.trySetCount(vv, 11), "trySetCount with current version");
            waitUntil(() -> seen.contains(11), "listener sees 11");
            truth(!bc.trySetCount(vv, 12), "trySetCount with stale version");
            waitUntil(() -> bc.getCount() == 11, "b sees 11");
            truth(bc.trySetCount(bc.getVersionedValue(), 12), "trySetCount from b");
            // b's listener hears of 12 only from the read its watch starts (its
            // own reply updates its value silently); that read returns whatever
            // is current, so the next write waits for it as well as for a.
            waitUntil(() -> a.getCount() == 12 && seen.contains(12), "a and the listener see 12");
            a.setCount(20);
            waitUntil(() -> seen.contains(20), "listener sees 20");
            eq(seen, Arrays.asList(11, 12, 20), "listener values in order");
            eq(c.getData().forPath(sp), ByteBuffer.allocate(4).putInt(20).array(), "raw 4-byte value");
            eq(c.checkExists().forPath(sp).getVersion(), 3, "znode version");
            a.close();
            bc.close();
            closeClient(c1); closeClient(c2);
        });

        check("shared_count_observer_sees_every_change_to_the_end", () -> {
            // Four sessions race to increment a SharedCount; a fifth follows it
            // with getData(watch), re-reading on every NodeDataChanged. A
            // notification arriving before the reply of the getData that set
            // the watch finds no watcher (the client registers it when the reply
            // arrives), and the observer would stop short of the final value.
            String sp = p("shared-race");
            c.create().forPath(sp, ByteBuffer.allocate(4).putInt(0).array());
            ZooKeeper observer = zookeeper(hostPort, new CopyOnWriteArrayList<>());
            AtomicInteger last = new AtomicInteger(-1);
            Watcher[] follow = new Watcher[1];
            follow[0] = e -> {
                if (e.getType() != Watcher.Event.EventType.NodeDataChanged) return;
                observer.getData(sp, follow[0], (rc, path, ctx, data, stat) -> {
                    if (rc == 0) last.set(ByteBuffer.wrap(data).getInt());
                }, null);
            };
            last.set(ByteBuffer.wrap(observer.getData(sp, follow[0], null)).getInt());
            List<CuratorFramework> writers = new ArrayList<>();
            List<Thread> threads = new ArrayList<>();
            AtomicReference<Throwable> err = new AtomicReference<>();
            for (int w = 0; w < 4; w++) {
                CuratorFramework cw = newClient();
                writers.add(cw);
                SharedCount count = new SharedCount(cw, sp, 0);
                count.start();
                threads.add(runThread("incrementer-" + w, () -> {
                    int done = 0;
                    while (done < 25) {
                        VersionedValue<Integer> v = count.getVersionedValue();
                        if (count.trySetCount(v, v.getValue() + 1)) done++;
                    }
                    count.close();
                }, err));
            }
            for (Thread t : threads) join(t, err);
            eq(c.checkExists().forPath(sp).getVersion(), 100, "znode version after 100 increments");
            waitUntil(() -> last.get() == 100, "observer reaches 100 (at " + last.get() + " when the writers were done)");
            observer.close();
            for (CuratorFramework cw : writers) closeClient(cw);
        });

        check("watches_survive_a_reconnect_to_the_same_session", () -> {
            // A data watch and a persistent-recursive watch on one path; the
            // connection is cut, another session changes the node, the client
            // reconnects to its session and re-registers both (setWatches2,
            // which ZooKeeper 3.8.0's client numbers like any request).
            String rp = p("reconnect");
            c.create().forPath(rp, b("1"));
            try (Proxy proxy = new Proxy(hostPort)) {
                List<Watcher.Event.KeeperState> states = new CopyOnWriteArrayList<>();
                ZooKeeper zk = zookeeper(proxy.addr(), states);
                Recorder data = new Recorder(), recursive = new Recorder();
                zk.getData(rp, data, null);
                zk.addWatch(rp, recursive, AddWatchMode.PERSISTENT_RECURSIVE);
                proxy.cut();
                waitUntil(() -> states.contains(Watcher.Event.KeeperState.Disconnected), "disconnected");
                c.setData().forPath(rp, b("2"));
                c.create().forPath(rp + "/during");
                waitUntil(() -> states.size() >= 3, "reconnected");
                eq(data.take(1), Arrays.asList("NodeDataChanged /reconnect"), "data watch fired by setWatches2");
                eq(recursive.take(1), Arrays.asList("NodeDataChanged /reconnect"), "recursive watch too");
                c.setData().forPath(rp, b("3"));
                c.create().forPath(rp + "/after");
                eq(recursive.take(2), Arrays.asList("NodeDataChanged /reconnect", "NodeCreated /reconnect/after"),
                        "recursive watch after the reconnect");
                data.expectNothing();
                eq(states, Arrays.asList(Watcher.Event.KeeperState.SyncConnected,
                        Watcher.Event.KeeperState.Disconnected, Watcher.Event.KeeperState.SyncConnected),
                        "one disconnect, one reconnect");
                zk.close();
            }
        });

        check("distributed_barrier", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String bp = p("barrier");
            DistributedBarrier b1 = new DistributedBarrier(c1, bp);
            DistributedBarrier b2 = new DistributedBarrier(c2, bp);
            truth(b2.waitOnBarrier(300, TimeUnit.MILLISECONDS), "no barrier set: wait returns true");
            b1.setBarrier();
            truth(c.checkExists().forPath(bp) != null, "barrier node exists");
            truth(!b2.waitOnBarrier(300, TimeUnit.MILLISECONDS), "wait on set barrier returned true");
            AtomicReference<Boolean> res = new AtomicReference<>();
            AtomicReference<Throwable> err = new AtomicReference<>();
            List<String> order = new CopyOnWriteArrayList<>();
            Thread t = runThread("barrier", () -> {
                res.set(b2.waitOnBarrier(TIMEOUT_MS, TimeUnit.MILLISECONDS));
                order.add("passed");
            }, err);
            Thread.sleep(SETTLE_MS);
            order.add("removing");
            b1.removeBarrier();
            join(t, err);
            eq(res.get(), Boolean.TRUE, "wait result after removal");
            eq(order, Arrays.asList("removing", "passed"), "barrier order");
            eq(c.checkExists().forPath(bp), null, "barrier node after removal");
            closeClient(c1); closeClient(c2);
        });

        check("distributed_double_barrier", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String bp = p("dbarrier");
            DistributedDoubleBarrier d1 = new DistributedDoubleBarrier(c1, bp, 2);
            DistributedDoubleBarrier d2 = new DistributedDoubleBarrier(c2, bp, 2);
            List<String> order = new CopyOnWriteArrayList<>();
            AtomicReference<Throwable> err = new AtomicReference<>();
            Thread t = runThread("enter1", () -> {
                truth(d1.enter(TIMEOUT_MS, TimeUnit.MILLISECONDS), "d1 enter");
                order.add("d1 entered");
            }, err);
            Thread.sleep(SETTLE_MS);
            eq(order, Collections.emptyList(), "d1 entered alone");
            order.add("d2 entering");
            truth(d2.enter(TIMEOUT_MS, TimeUnit.MILLISECONDS), "d2 enter");
            join(t, err);
            eq(order.get(0), "d2 entering", "entry order");
            eq(new java.util.HashSet<>(order), new java.util.HashSet<>(Arrays.asList("d2 entering", "d1 entered")),
                    "both entered");
            Thread t2 = runThread("leave1", () -> truth(d1.leave(TIMEOUT_MS, TimeUnit.MILLISECONDS), "d1 leave"), err);
            truth(d2.leave(TIMEOUT_MS, TimeUnit.MILLISECONDS), "d2 leave");
            join(t2, err);
            waitUntil(() -> { try { return c.getChildren().forPath(bp).isEmpty(); } catch (Exception e) { return false; } },
                    "double barrier empty");
            closeClient(c1); closeClient(c2);
        });

        check("curator_cache_events", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String cp = p("cache");
            c2.create().forPath(cp, b("root"));
            List<String> events = new CopyOnWriteArrayList<>();
            CountDownLatch init = new CountDownLatch(1);
            CuratorCache cache = CuratorCache.build(c1, cp);
            cache.listenable().addListener(CuratorCacheListener.builder()
                    .forAll((type, oldD, newD) -> {
                        ChildData d = newD != null ? newD : oldD;
                        StringBuilder sb = new StringBuilder(type + " " + rel(d.getPath()));
                        if (oldD != null) sb.append(" old=").append(s(oldD.getData()));
                        if (newD != null) sb.append(" new=").append(s(newD.getData()));
                        events.add(sb.toString());
                    })
                    .forInitialized(init::countDown)
                    .build());
            cache.start();
            truth(init.await(TIMEOUT_MS, TimeUnit.MILLISECONDS), "cache initialized");
            eq(events, Arrays.asList("NODE_CREATED /cache new=root"), "initial events");
            List<String> expected = new ArrayList<>(events);
            Body[] steps = {
                () -> c2.create().forPath(cp + "/a", b("1")),
                () -> c2.setData().forPath(cp + "/a", b("2")),
                () -> c2.create().forPath(cp + "/a/b", b("x")),
                () -> c2.setData().forPath(cp, b("root2")),
                () -> c2.delete().forPath(cp + "/a/b"),
                () -> c2.delete().forPath(cp + "/a"),
            };
            String[] want = {
                "NODE_CREATED /cache/a new=1",
                "NODE_CHANGED /cache/a old=1 new=2",
                "NODE_CREATED /cache/a/b new=x",
                "NODE_CHANGED /cache old=root new=root2",
                "NODE_DELETED /cache/a/b old=x",
                "NODE_DELETED /cache/a old=2",
            };
            for (int i = 0; i < steps.length; i++) {
                steps[i].run();
                expected.add(want[i]);
                int n = expected.size();
                waitUntil(() -> events.size() >= n, "cache event " + want[i]);
                eq(events, expected, "cache events after step " + i);
            }
            eq(cache.size(), 1, "cache size");
            eq(s(cache.get(cp).get().getData()), "root2", "cached root data");
            // bulk changes without waiting: the final state must converge
            c2.create().forPath(cp + "/x", b("1"));
            c2.create().forPath(cp + "/y", b("2"));
            c2.setData().forPath(cp + "/x", b("3"));
            waitUntil(() -> cache.size() == 3 && cache.get(cp + "/x").map(d -> "3".equals(s(d.getData()))).orElse(false),
                    "cache converges on x=3,y=2");
            Thread.sleep(SETTLE_MS);
            List<String> tail = events.subList(expected.size(), events.size());
            truth(tail.contains("NODE_CREATED /cache/y new=2"), "y created event in " + tail);
            cache.close();
            closeClient(c1); closeClient(c2);
        });

        check("tree_cache_events", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String cp = p("tree");
            c2.create().forPath(cp, b("r"));
            c2.create().forPath(cp + "/pre", b("p"));
            List<String> events = new CopyOnWriteArrayList<>();
            TreeCache tc = TreeCache.newBuilder(c1, cp).build();
            tc.getListenable().addListener((cf, e) -> {
                if (e.getType() == TreeCacheEvent.Type.CONNECTION_SUSPENDED
                        || e.getType() == TreeCacheEvent.Type.CONNECTION_RECONNECTED
                        || e.getType() == TreeCacheEvent.Type.CONNECTION_LOST) return;
                String d = e.getData() == null ? "" : " " + rel(e.getData().getPath()) + "=" + s(e.getData().getData());
                events.add(e.getType() + d);
            });
            tc.start();
            waitUntil(() -> events.contains("INITIALIZED"), "tree cache INITIALIZED");
            eq(events, Arrays.asList("NODE_ADDED /tree=r", "NODE_ADDED /tree/pre=p", "INITIALIZED"), "initial tree events");
            List<String> expected = new ArrayList<>(events);
            Body[] steps = {
                () -> c2.create().forPath(cp + "/a", b("1")),
                () -> c2.setData().forPath(cp + "/a", b("2")),
                () -> c2.create().forPath(cp + "/a/b", b("x")),
                () -> c2.delete().forPath(cp + "/a/b"),
                () -> c2.delete().forPath(cp + "/a"),
            };
            String[] want = {
                "NODE_ADDED /tree/a=1", "NODE_UPDATED /tree/a=2", "NODE_ADDED /tree/a/b=x",
                "NODE_REMOVED /tree/a/b=x", "NODE_REMOVED /tree/a=2",
            };
            for (int i = 0; i < steps.length; i++) {
                steps[i].run();
                expected.add(want[i]);
                int n = expected.size();
                waitUntil(() -> events.size() >= n, "tree event " + want[i]);
                eq(events, expected, "tree events after step " + i);
            }
            Thread.sleep(SETTLE_MS);
            eq(events, expected, "no extra tree events");
            eq(tc.getCurrentChildren(cp).keySet(), Collections.singleton("pre"), "tree children");
            tc.close();
            closeClient(c1); closeClient(c2);
        });

        check("add_watch_persistent_recursive", () -> {
            CuratorFramework c2 = newClient();
            String wp = p("pw");
            c.create().forPath(wp, b("0"));
            Recorder r = new Recorder();
            c.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(r).forPath(wp);
            c2.create().forPath(wp + "/a", b("1"));
            c2.setData().forPath(wp + "/a", b("2"));
            c2.create().forPath(wp + "/a/b");
            c2.create().withMode(CreateMode.EPHEMERAL).forPath(wp + "/a/b/e");
            c2.setData().forPath(wp + "/a/b/e", b("3"));
            c2.delete().forPath(wp + "/a/b/e");
            c2.delete().forPath(wp + "/a/b");
            c2.setData().forPath(wp, b("4"));
            c2.create().forPath(p("pw-sibling")); // outside the watched subtree
            c2.delete().forPath(wp + "/a");
            c2.delete().forPath(wp);
            c2.create().forPath(wp);
            List<String> got = r.take(11);
            eq(got, Arrays.asList(
                    "NodeCreated /pw/a",
                    "NodeDataChanged /pw/a",
                    "NodeCreated /pw/a/b",
                    "NodeCreated /pw/a/b/e",
                    "NodeDataChanged /pw/a/b/e",
                    "NodeDeleted /pw/a/b/e",
                    "NodeDeleted /pw/a/b",
                    "NodeDataChanged /pw",
                    "NodeDeleted /pw/a",
                    "NodeDeleted /pw",
                    "NodeCreated /pw"), "recursive watch events");
            r.expectNothing();
            closeClient(c2);
        });

        check("add_watch_persistent_recursive_exact", () -> {
            // Same as above, but verifies that nothing beyond the expected events arrives
            // (no NodeChildrenChanged for recursive watches, nothing for the sibling).
            CuratorFramework c2 = newClient();
            String wp = p("pwx");
            c.create().forPath(wp);
            Recorder r = new Recorder();
            c.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(r).forPath(wp);
            c2.create().forPath(wp + "/a", b("1"));
            c2.create().forPath(p("pwx-sibling"));
            c2.setData().forPath(wp + "/a", b("2"));
            c2.delete().forPath(wp + "/a");
            eq(r.take(3), Arrays.asList("NodeCreated /pwx/a", "NodeDataChanged /pwx/a", "NodeDeleted /pwx/a"),
                    "recursive events");
            r.expectNothing();
            // (a one-shot watch on the same path from the same session is deliberately not
            // mixed in: ZooKeeper 3.8.0 lets it replace the persistent one, ZOOKEEPER-4466)
            c2.setData().forPath(wp, b("x"));
            c2.setData().forPath(wp, b("y"));
            eq(r.take(2), Arrays.asList("NodeDataChanged /pwx", "NodeDataChanged /pwx"), "persistent keeps firing");
            // removing the watch stops delivery
            c.watchers().remove(r).ofType(Watcher.WatcherType.Any).forPath(wp);
            c2.create().forPath(wp + "/after");
            c2.setData().forPath(wp, b("z"));
            Thread.sleep(SETTLE_MS);
            List<String> left = new ArrayList<>(r.q);
            eq(left, Arrays.asList("PersistentWatchRemoved /pwx"), "events after removal");
            expectKeeper(KeeperException.Code.NOWATCHER,
                    () -> c.watchers().remove(r).ofType(Watcher.WatcherType.Any).forPath(wp), "remove twice");
            closeClient(c2);
        });

        check("add_watch_persistent", () -> {
            CuratorFramework c2 = newClient();
            String wp = p("pw2");
            c.create().forPath(wp);
            Recorder r = new Recorder();
            c.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(r).forPath(wp);
            c2.create().forPath(wp + "/k", b("1"));
            c2.setData().forPath(wp + "/k", b("2")); // grandchild data: not reported
            c2.setData().forPath(wp, b("d"));
            c2.delete().forPath(wp + "/k");
            c2.delete().forPath(wp);
            c2.create().forPath(wp, b("again"));
            eq(r.take(5), Arrays.asList(
                    "NodeChildrenChanged /pw2",
                    "NodeDataChanged /pw2",
                    "NodeChildrenChanged /pw2",
                    "NodeDeleted /pw2",
                    "NodeCreated /pw2"), "persistent (non-recursive) events");
            r.expectNothing();
            closeClient(c2);
        });

        check("container_nodes", () -> {
            String cn = p("ctr");
            eq(c.create().withMode(CreateMode.CONTAINER).forPath(cn, b("c")), cn, "container create path");
            Stat st = c.checkExists().forPath(cn);
            eq(st.getEphemeralOwner(), 0L, "container ephemeralOwner (Stat shows 0)");
            // never-used empty container must survive; a container that had children is reaped once empty
            String idle = p("ctr-idle");
            c.create().withMode(CreateMode.CONTAINER).forPath(idle);
            c.create().forPath(cn + "/kid");
            c.delete().forPath(cn + "/kid");
            waitUntil(() -> { try { return c.checkExists().forPath(cn) == null; } catch (Exception e) { return false; } },
                    "emptied container reaped", 6000);
            truth(c.checkExists().forPath(idle) != null, "never-used container was reaped");
            // createContainers: the path and its missing parents become containers
            c.createContainers(p("cc", "x", "y"));
            for (String q : new String[]{p("cc"), p("cc", "x"), p("cc", "x", "y")}) {
                eq(c.checkExists().forPath(q).getEphemeralOwner(), 0L, "createContainers ephemeralOwner " + rel(q));
            }
            c.createContainers(p("cc", "x", "y")); // idempotent
            eq(c.getData().forPath(p("cc", "x", "y")), new byte[0], "createContainers data");
            // creatingParentContainersIfNeeded: parents are containers, the leaf keeps its mode
            c.create().creatingParentContainersIfNeeded().forPath(p("pc", "q", "leaf"), b("l"));
            eq(c.getData().forPath(p("pc", "q", "leaf")), b("l"), "leaf data");
            // cascading reap: deleting the leaf empties q, then pc; the createContainers
            // chain likewise goes once y had (and lost) a child; the persistent leaf
            // of a container is never reaped itself
            c.create().forPath(p("pc", "keep"));
            c.create().forPath(p("cc", "x", "y", "k"));
            c.delete().forPath(p("cc", "x", "y", "k"));
            c.delete().forPath(p("pc", "q", "leaf"));
            waitUntil(() -> { try { return c.checkExists().forPath(p("pc", "q")) == null
                    && c.checkExists().forPath(p("cc")) == null; } catch (Exception e) { return false; } },
                    "cascading container reap", 9000);
            truth(c.checkExists().forPath(p("pc")) != null, "container pc reaped although it still has a child");
            truth(c.checkExists().forPath(p("pc", "keep")) != null, "persistent child of a container vanished");
        });

        check("persistent_node_ephemeral", () -> {
            CuratorFramework c1 = newClient(), c2 = newClient();
            String np = p("pnode");
            PersistentNode pn = new PersistentNode(c1, CreateMode.EPHEMERAL, false, np, b("hello"));
            pn.start();
            truth(pn.waitForInitialCreate(TIMEOUT_MS, TimeUnit.MILLISECONDS), "initial create");
            eq(pn.getActualPath(), np, "actual path");
            Stat st = new Stat();
            eq(c.getData().storingStatIn(st).forPath(np), b("hello"), "data");
            eq(st.getEphemeralOwner(), sessionId(c1), "ephemeralOwner");
            // someone else deletes it: the recipe re-creates it
            c2.delete().forPath(np);
            waitUntil(() -> { try { return c.checkExists().forPath(np) != null; } catch (Exception e) { return false; } },
                    "node re-created after delete");
            eq(c.getData().forPath(np), b("hello"), "re-created data");
            pn.setData(b("world"));
            waitUntil(() -> { try { return "world".equals(s(c.getData().forPath(np))); } catch (Exception e) { return false; } },
                    "setData through PersistentNode");
            pn.close();
            eq(c.checkExists().forPath(np), null, "node gone after close");
            // protected ephemeral sequential
            PersistentNode ps = new PersistentNode(c1, CreateMode.EPHEMERAL_SEQUENTIAL, true, p("pseq") + "/m-", b("s"));
            c.create().forPath(p("pseq"));
            ps.start();
            truth(ps.waitForInitialCreate(TIMEOUT_MS, TimeUnit.MILLISECONDS), "seq initial create");
            truth(Pattern.matches(Pattern.quote(p("pseq")) + "/_c_[0-9a-f-]{36}-m-0000000000", ps.getActualPath()),
                    "protected sequential actual path " + ps.getActualPath());
            ps.close();
            eq(c.getChildren().forPath(p("pseq")), Collections.emptyList(), "seq node gone after close");
            closeClient(c1); closeClient(c2);
        });

        boolean[] ttlEnabled = {false};
        check("ttl_node_create", () -> {
            String tp = p("ttl");
            try {
                c.create().withTtl(60000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(tp, b("t"));
            } catch (KeeperException.UnimplementedException e) {
                throw new Skip("server has TTL nodes disabled (Unimplemented); run it with zookeeper.extendedTypesEnabled=true");
            }
            ttlEnabled[0] = true;
            Stat st = c.checkExists().forPath(tp);
            eq(st.getEphemeralOwner(), 0L, "TTL node ephemeralOwner (Stat shows 0)");
            eq(c.getData().forPath(tp), b("t"), "TTL node data");
            String sq = c.create().withTtl(60000).withMode(CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL).forPath(tp + "/s-");
            eq(sq, tp + "/s-0000000000", "sequential TTL name");
            // an expired, childless TTL node is reaped
            String shortT = p("ttl-short");
            c.create().withTtl(300).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(shortT);
            waitUntil(() -> { try { return c.checkExists().forPath(shortT) == null; } catch (Exception e) { return false; } },
                    "short TTL node reaped", 6000);
        });

        check("persistent_ttl_node", () -> {
            if (!ttlEnabled[0]) throw new Skip("TTL nodes disabled on the server");
            CuratorFramework c1 = newClient();
            String tp = p("pttl");
            PersistentTtlNode n = new PersistentTtlNode(c1, tp, 1000, b("payload"));
            n.start();
            truth(n.waitForInitialCreate(TIMEOUT_MS, TimeUnit.MILLISECONDS), "initial create");
            Stat st = new Stat();
            eq(c.getData().storingStatIn(st).forPath(tp), b("payload"), "container data");
            eq(st.getEphemeralOwner(), 0L, "container ephemeralOwner (Stat shows 0)");
            String touch = tp + "/" + PersistentTtlNode.DEFAULT_CHILD_NODE_NAME;
            waitUntil(() -> { try { return c.checkExists().forPath(touch) != null; } catch (Exception e) { return false; } },
                    "touch child exists");
            eq(c.checkExists().forPath(touch).getEphemeralOwner(), 0L, "touch node ephemeralOwner");
            // while running, the node survives several TTL periods
            Thread.sleep(2500);
            truth(c.checkExists().forPath(tp) != null, "PersistentTtlNode vanished while running");
            n.close();
            // after close: touch node expires (TTL), then the empty container is reaped
            waitUntil(() -> { try { return c.checkExists().forPath(tp) == null; } catch (Exception e) { return false; } },
                    "PersistentTtlNode reaped after close", 8000);
            closeClient(c1);
        });

        check("get_config_standalone", () -> {
            // Curator's EnsembleTracker reads /zookeeper/config; in standalone mode it is empty.
            Stat st = new Stat();
            byte[] cfg = c.getConfig().storingStatIn(st).forEnsemble();
            truth(cfg != null, "getConfig returned null");
            eq(s(cfg), "", "standalone config data");
        });

        check("cleanup_root", () -> {
            c.delete().deletingChildrenIfNeeded().forPath(ROOT);
            eq(c.checkExists().forPath(ROOT), null, "root after cleanup");
        });

        for (CuratorFramework cf : clients) closeClient(cf);
        long secs = (System.currentTimeMillis() - start) / 1000;
        if (!failedNames.isEmpty()) System.out.println("failed checks: " + String.join(", ", failedNames));
        System.out.println("(" + secs + " s)");
        System.out.println(passed + " passed, " + failed + " failed");
        System.out.flush();
        Runtime.getRuntime().halt(failed == 0 ? 0 : 1);
    }
}
