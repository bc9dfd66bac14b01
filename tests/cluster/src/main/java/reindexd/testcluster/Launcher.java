package reindexd.testcluster;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.ingest.common.IngestCommonPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Single-node OpenSearch 2.19 for reindexd's integration tests.
 *
 * Usage: java -cp target/classes:target/lib/* reindexd.testcluster.Launcher HOME READY_FILE [key=value ...]
 *
 * The official distribution is not on Maven Central, but the server and its
 * modules are, so we build the node in-process. Constructing Node directly
 * skips the bootstrap (security manager, jar-hell, bootstrap checks, the
 * run-as-root refusal), which is what a throwaway test node wants.
 */
public final class Launcher {

    /**
     * Modules that a distribution would load from modules/; here they are
     * plain classpath plugins. netty4 gives us HTTP at all; the rest are what
     * reindexd's tests exercise (_reindex/_update_by_query, scripts, ingest processors, analyzers,
     * scaled_float & co.).
     */
    private static final List<Class<? extends Plugin>> MODULES = List.of(
        Netty4Plugin.class,
        ReindexPlugin.class,
        CommonAnalysisPlugin.class,
        PainlessPlugin.class,
        IngestCommonPlugin.class,
        MapperExtrasPlugin.class
    );

    /** The 2.x constructor taking plugin classes is protected, hence the subclass. */
    static final class TestNode extends Node {
        TestNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            // forbidPrivateIndexSettings=true: behave like a production node,
            // so clients cannot set index.* settings real clusters reject.
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
            // A range, so two test clusters on different HTTP ports never fight
            // over the transport port that single-node discovery still binds.
            .put("transport.port", "9300-9399")
            .put("discovery.type", "single-node")
            // CI disks are often >90% full; the default watermarks would then
            // refuse to allocate shards and the cluster would stay red.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // With a 1 GiB heap the real-memory breaker trips under bulk load
            // and produces 429s that are not what a test asked for.
            .put("indices.breaker.total.use_real_memory", false);
        // Extra settings from the script (--setting k=v, and http.port) win.
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("bad setting (want key=value): " + args[i]);
                System.exit(2);
            }
            settings.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("plugins")); // must exist, stays empty
        Files.createDirectories(home.resolve("modules"));

        CountDownLatch stopped = new CountDownLatch(1);
        try {
            Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Map.of(), home.resolve("config"), () -> "reindexd-test-node");
            Node node = new TestNode(env, MODULES);
            // SIGTERM from `test-cluster stop` lands here: close the node so the
            // data dir lock and the ports are released before the JVM exits.
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
            // One node can never host replicas: make new indexes default to 0
            // so they go green. A cluster-level default (not a template) so an
            // explicit number_of_replicas from a client still wins. Done before
            // READY so the script never hands out a node without it.
            node.client().admin().cluster().prepareHealth().setWaitForYellowStatus()
                .setTimeout("60s").get();
            node.client().admin().cluster().prepareUpdateSettings()
                .setPersistentSettings(Settings.builder().put("cluster.default_number_of_replicas", 0))
                .get();
        } catch (Throwable t) {
            t.printStackTrace();
            // halt, not exit: a half-built node leaves non-daemon threads that
            // would keep the JVM alive, and its shutdown hook would hang on close.
            Runtime.getRuntime().halt(1);
        }
        Files.writeString(readyFile, ProcessHandle.current().pid() + "\n");
        System.out.println("reindexd test cluster ready");
        stopped.await();
    }
}
