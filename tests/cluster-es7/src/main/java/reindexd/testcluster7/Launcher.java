package reindexd.testcluster7;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.mapper.MapperExtrasPlugin;
import org.elasticsearch.join.ParentJoinPlugin;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.reindex.ReindexPlugin;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * Single-node Elasticsearch 7.17 for reindexd's integration tests.
 *
 * Usage: java -cp target/classes:target/lib/* reindexd.testcluster7.Launcher HOME READY_FILE [key=value ...]
 *
 * No 7.17 distribution is on Maven Central, but the server and the client
 * jars of its modules are, so the node is built in-process, as tests/cluster
 * does for OpenSearch: constructing Node directly skips the bootstrap
 * (security manager, jar-hell, bootstrap checks, the run-as-root refusal).
 * Painless and analysis-common were never published for 7.17: scripts and
 * analyzers such as snowball are not available on this engine.
 */
public final class Launcher {

    /** The distribution's modules/ that exist on Maven Central, as classpath plugins. */
    private static final List<Class<? extends Plugin>> MODULES = List.of(
        Netty4Plugin.class,
        ReindexPlugin.class,
        MapperExtrasPlugin.class,
        ParentJoinPlugin.class
    );

    /** The constructor taking plugin classes is protected, hence the subclass. */
    static final class TestNode extends Node {
        TestNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Launcher HOME READY_FILE [key=value ...]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Path readyFile = Paths.get(args[1]).toAbsolutePath();
        Files.deleteIfExists(readyFile);

        Settings.Builder settings = Settings.builder()
            .put("cluster.name", "reindexd-test")
            .put("node.name", "reindexd-test-node")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", "9200")
            .put("transport.port", "9300-9399")
            .put("discovery.type", "single-node")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("indices.breaker.total.use_real_memory", false);
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("bad setting (want key=value): " + args[i]);
                System.exit(2);
            }
            settings.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("plugins"));
        Files.createDirectories(home.resolve("modules"));

        CountDownLatch stopped = new CountDownLatch(1);
        try {
            Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Map.of(), home.resolve("config"), () -> "reindexd-test-node");
            Node node = new TestNode(env, MODULES);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try {
                    node.close();
                    node.awaitClose(20, TimeUnit.SECONDS);
                } catch (Exception e) {
                    e.printStackTrace();
                } finally {
                    stopped.countDown();
                }
            }, "reindexd-test-shutdown"));
            node.start();
            node.client().admin().cluster().prepareHealth().setWaitForYellowStatus()
                .setTimeout("60s").get();
        } catch (Throwable t) {
            t.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        Files.writeString(readyFile, ProcessHandle.current().pid() + "\n");
        System.out.println("reindexd test cluster ready");
        stopped.await();
    }
}
