// Curator 5 with a 3-host connect string, moving between the members of an ensemble.
//
// Usage (under herd_ensemble.py, which starts the ensemble and kills and starts members
// on request): java ... CuratorEnsemble HOST:PORT,HOST:PORT,HOST:PORT
//
// One client holds an ephemeral node, an InterProcessMutex, a LeaderLatch and a
// CuratorCache. Twice the member it is connected to is killed: the client must come back
// on another member with the same session (SUSPENDED then RECONNECTED, never LOST), its
// ephemeral and lock node kept, the lock still held, the latch leading again, the cache
// seeing a write made through a second client, and its own writes going on. Then a
// client given only the two followers sees the leader killed: its follower stops
// serving until a new leader is elected, and the client comes back with its session and
// ephemeral and writes again. Each killed member is started again and the ensemble
// settles before the next round. The assertion helpers are CuratorSuite's. Every wait
// is bounded; a watchdog ends the run after 120 s. Prints "ok ..." per round and exits
// 0 only when every check passed.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

public class CuratorEnsemble {
    static final String ROOT = "/curator_ensemble";
    static final BufferedReader control =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    /** Asks herd_ensemble.py to kill or start a member; returns the member's address. */
    static String request(String verb, String member) throws Exception {
        System.out.println("herd_ensemble: " + verb + " " + member);
        System.out.flush();
        String reply = control.readLine();
        CuratorSuite.truth(reply != null && reply.startsWith("ok "), verb + " " + member + ": " + reply);
        return reply.substring(3);
    }

    /** The member the client's connection goes to, from ZooKeeper.toString(). */
    static String remote(CuratorFramework c) throws Exception {
        String s = c.getZookeeperClient().getZooKeeper().toString();
        Matcher m = Pattern.compile("remoteserver:[^/\\s]*/([0-9.]+:[0-9]+)").matcher(s);
        CuratorSuite.truth(m.find(), "no remote server in " + s);
        return m.group(1);
    }

    /**
     * Waits for a client whose member was killed to come back (SUSPENDED, then
     * RECONNECTED, never LOST) with its session and its ephemeral ROOT/eph-HEX; returns
     * the member it is now connected to.
     */
    static String moved(CuratorFramework c, List<ConnectionState> states, long session, String killed)
            throws Exception {
        CuratorSuite.waitUntil(() -> states.contains(ConnectionState.RECONNECTED),
                "RECONNECTED after " + killed + " was killed", 30_000);
        String to = remote(c);
        CuratorSuite.truth(!to.equals(killed), "moved off the killed member " + killed);
        // A new client's CONNECTED may reach a listener added after start late:
        // what follows it is what the kill caused.
        ConnectionState first = states.stream().filter(st -> st != ConnectionState.CONNECTED)
                .findFirst().orElse(null);
        CuratorSuite.eq(first, ConnectionState.SUSPENDED, "first state after the kill");
        CuratorSuite.truth(!states.contains(ConnectionState.LOST), "session not lost: " + states);
        CuratorSuite.eq(c.getZookeeperClient().getZooKeeper().getSessionId(), session, "same session");
        Stat st = new Stat();
        String eph = ephemeral(session);
        CuratorSuite.eq(c.getData().storingStatIn(st).forPath(eph), CuratorSuite.b("mine"), "ephemeral data");
        CuratorSuite.eq(st.getEphemeralOwner(), session, "ephemeral owner");
        return to;
    }

    static String ephemeral(long session) {
        return ROOT + "/eph-" + Long.toHexString(session);
    }

    static CuratorFramework client(String hosts) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder().connectString(hosts)
                .sessionTimeoutMs(15000).connectionTimeoutMs(5000)
                .retryPolicy(new RetryNTimes(20, 250)).build();
        c.start();
        CuratorSuite.truth(c.blockUntilConnected(10, TimeUnit.SECONDS), "connected within 10 s");
        return c;
    }

    public static void main(String[] args) throws Exception {
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(120_000); } catch (InterruptedException e) { return; }
            System.out.println("FAIL watchdog: more than 120 s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        try {
            run(args[0]);
            System.out.println("curator_ensemble: all checks passed");
        } catch (Throwable e) {
            System.out.println("FAIL curator_ensemble: " + e);
            e.printStackTrace(System.out);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        Runtime.getRuntime().halt(0);
    }

    static void run(String hosts) throws Exception {
        CuratorFramework c = client(hosts);
        CuratorFramework other = client(hosts);
        List<ConnectionState> states = new CopyOnWriteArrayList<>();
        c.getConnectionStateListenable().addListener((cl, st) -> states.add(st));
        if (c.checkExists().forPath(ROOT) != null) {
            c.delete().deletingChildrenIfNeeded().forPath(ROOT);
        }
        c.create().forPath(ROOT, CuratorSuite.b("0"));
        long session = c.getZookeeperClient().getZooKeeper().getSessionId();
        c.create().withMode(CreateMode.EPHEMERAL).forPath(ephemeral(session), CuratorSuite.b("mine"));
        InterProcessMutex mutex = new InterProcessMutex(c, ROOT + "/lock");
        CuratorSuite.truth(mutex.acquire(10, TimeUnit.SECONDS), "mutex acquired");
        LeaderLatch latch = new LeaderLatch(c, ROOT + "/latch", "only");
        latch.start();
        CuratorSuite.truth(latch.await(10, TimeUnit.SECONDS), "latch leads");
        List<String> seen = new CopyOnWriteArrayList<>();
        CuratorCache cache = CuratorCache.build(c, ROOT);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forChanges((before, after) -> {
                    if (after.getPath().equals(ROOT)) seen.add(CuratorSuite.s(after.getData()));
                }).build());
        cache.start();
        CuratorSuite.waitUntil(() -> cache.get(ROOT).isPresent(), "cache primed");

        for (int round = 1; round <= 2; round++) {
            String from = remote(c);
            states.clear();
            String killed = request("kill", from);
            String to = moved(c, states, session, killed);
            CuratorSuite.truth(mutex.isAcquiredInThisProcess(), "mutex still held");
            CuratorSuite.eq(c.getChildren().forPath(ROOT + "/lock").size(), 1, "lock node kept");
            CuratorSuite.truth(latch.await(10, TimeUnit.SECONDS), "latch leads again");
            c.create().forPath(ROOT + "/after-" + round);
            String value = "round " + round;
            other.setData().forPath(ROOT, CuratorSuite.b(value));
            CuratorSuite.waitUntil(() -> seen.contains(value), "cache sees " + value);
            CuratorSuite.eq(CuratorSuite.s(c.getData().forPath(ROOT)), value, "read after the cache event");
            request("start", killed);
            System.out.printf("ok   round %d: %s killed, session 0x%x moved from %s to %s with its "
                    + "ephemeral, lock, latch and cache; %s%n", round, killed, session, from, to, states);
            System.out.flush();
        }
        // The leader dies under a client connected to a follower: the follower stops
        // serving while a new leader is elected, and the client comes back.
        String leader = request("find", "leader");
        String followers = Arrays.stream(hosts.split(",")).filter(h -> !h.equals(leader))
                .collect(Collectors.joining(","));
        CuratorFramework f = client(followers);
        List<ConnectionState> fstates = new CopyOnWriteArrayList<>();
        f.getConnectionStateListenable().addListener((cl, st) -> fstates.add(st));
        long fsession = f.getZookeeperClient().getZooKeeper().getSessionId();
        f.create().withMode(CreateMode.EPHEMERAL).forPath(ephemeral(fsession), CuratorSuite.b("mine"));
        String from = remote(f);
        request("kill", leader);
        String to = moved(f, fstates, fsession, leader);
        f.create().forPath(ROOT + "/after-3");
        CuratorSuite.waitUntil(() -> {
            try {
                return c.checkExists().forPath(ROOT + "/after-3") != null;
            } catch (Exception e) {
                return false;
            }
        }, "the first client sees the second one's write");
        request("start", leader);
        System.out.printf("ok   round 3: leader %s killed, session 0x%x on follower %s came back on %s; %s%n",
                leader, fsession, from, to, fstates);
        f.close();
        mutex.release();
        latch.close();
        cache.close();
        c.close();
        CuratorSuite.truth(other.checkExists().forPath(ephemeral(session)) == null,
                "the ephemeral went with the closed session");
        CuratorSuite.truth(other.checkExists().forPath(ephemeral(fsession)) == null,
                "the second ephemeral went with its closed session");
        List<String> children = CuratorSuite.sortedChildren(other, ROOT);
        CuratorSuite.eq(children, Arrays.asList("after-1", "after-2", "after-3", "latch", "lock"),
                "children at the end");
        CuratorSuite.eq(other.getChildren().forPath(ROOT + "/lock").size(), 0, "lock released");
        other.delete().deletingChildrenIfNeeded().forPath(ROOT);
        other.close();
    }
}
