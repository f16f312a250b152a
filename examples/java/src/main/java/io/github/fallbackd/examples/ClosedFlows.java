package io.github.fallbackd.examples;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;

import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads the fallback events topic and prints one line per closed flow
 * (FLOW_CLOSED), the same line as examples/python/fallback_example.py:
 *
 * <pre>
 * CLOSED request_id=&lt;id&gt; outcome=&lt;outcome&gt; channel=&lt;channel|-&gt; delivered_step=&lt;n|-&gt; steps=&lt;n&gt; fallbacks=&lt;n&gt; time_to_outcome_ms=&lt;n&gt; late=&lt;bool&gt; multi_channel=&lt;bool&gt;
 * </pre>
 *
 * <p>The events are plain Avro binary of schemas/FlowEvent.avsc (no
 * schema-registry framing), read with the generic API; the writer's schema is
 * the one whose fingerprint the record's {@code fallback.schema.fp} header
 * names (the current one, or an earlier one from schemas/previous/), resolved
 * to the current schema. Repeated events (same event_id, re-emitted after a
 * processor crash) are printed once.
 *
 * <p>Exit status: 0 once the expected flows have closed, 1 on timeout or when
 * one of them was rejected (REQUEST_REJECTED), 2 on a bad option or a setup
 * error. Only CLOSED and REJECTED lines go to stdout; the rest to stderr.
 *
 * <p>Plaintext Kafka only: for TLS and SASL add the usual kafka-clients
 * properties (security.protocol, ssl.truststore.*, sasl.mechanism,
 * sasl.jaas.config) to {@link #consumerProps}; docs/security.md says what the
 * brokers expect.
 */
public final class ClosedFlows {
  static final String USAGE = String.join("\n",
      "usage: java -jar fallback-example.jar [options]",
      "",
      "  --brokers LIST      Kafka seed brokers (default $FALLBACK_BROKERS or 127.0.0.1:9092)",
      "  --topic NAME        events topic (default $FALLBACK_TOPIC_EVENTS or fallback.events)",
      "  --schemas DIR       the .avsc files (default $FALLBACK_SCHEMAS_DIR, else the repository's",
      "                      schemas/ found from the jar's place, else ./schemas)",
      "  --group ID          read in this consumer group and commit; default: no group, every",
      "                      partition assigned directly and nothing committed",
      "  --from-beginning    start at the topic's start (default: its end; with --group, where",
      "                      the group left off, or the start/end for a new group)",
      "  --request-ids A,B   the flows to wait for (default count: their number)",
      "  --prefix P          or: the flows whose request id starts with P- (needs --expect)",
      "  --expect N          how many closed flows to wait for; without --request-ids or",
      "                      --prefix, any N flows",
      "  --timeout SECONDS   give up after this long (default 120)");

  static final class Options {
    String brokers = envOr("FALLBACK_BROKERS", "127.0.0.1:9092");
    String topic = envOr("FALLBACK_TOPIC_EVENTS", "fallback.events");
    Path schemas;
    String group;
    boolean fromBeginning;
    Set<String> requestIds = new LinkedHashSet<>();
    String prefix;
    int expect = -1;
    double timeoutSeconds = 120;
  }

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  static int run(String[] args, PrintStream out, PrintStream err) {
    Options o;
    try {
      o = parse(args);
    } catch (IllegalArgumentException e) {
      err.println("fallback-example: " + e.getMessage());
      err.println(USAGE);
      return 2;
    }
    if (o == null) {
      out.println(USAGE);
      return 0;
    }
    Contract.Record flowEvent;
    try {
      flowEvent = Contract.load(o.schemas, "FlowEvent");
    } catch (IOException | RuntimeException e) {
      err.println("fallback-example: cannot load the schemas from " + o.schemas + ": " + e);
      return 2;
    }

    Map<String, String> closed = new LinkedHashMap<>();
    Map<String, String> failed = new TreeMap<>();
    Set<String> seenEvents = new HashSet<>();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps(o))) {
      if (!start(consumer, o, err)) {
        return 2;
      }
      long deadline = System.nanoTime() + (long) (o.timeoutSeconds * 1e9);
      while (closed.size() + failed.size() < o.expect && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(500))) {
          GenericRecord ev;
          try {
            ev = flowEvent.decode(header(rec, Contract.HEADER_FINGERPRINT), rec.value());
          } catch (IOException | RuntimeException e) {
            err.printf("fallback-example: skipping an event that does not decode at %s/%d/%d: %s%n",
                rec.topic(), rec.partition(), rec.offset(), e);
            continue;
          }
          if (ev == null) {
            err.printf("fallback-example: skipping an event of an unknown schema (%s %s) at %s/%d/%d%n",
                header(rec, Contract.HEADER_SCHEMA), header(rec, Contract.HEADER_FINGERPRINT),
                rec.topic(), rec.partition(), rec.offset());
            continue;
          }
          String rid = str(ev.get("request_id"));
          String eventId = str(ev.get("event_id"));
          if (!ours(o, rid) || !seenEvents.add(eventId) || closed.containsKey(rid) || failed.containsKey(rid)) {
            continue;
          }
          switch (str(ev.get("type"))) {
            case "FLOW_CLOSED" -> {
              if (ev.get("summary") == null) {
                err.println("fallback-example: " + rid + ": FLOW_CLOSED without a summary (event " + eventId + "): skipped");
                continue;
              }
              closed.put(rid, Lines.closed(ev));
              out.println(closed.get(rid));
              out.flush();
            }
            case "REQUEST_REJECTED" -> {
              failed.put(rid, "rejected: " + str(ev.get("reason")));
              out.println("REJECTED request_id=" + Lines.esc(rid) + " reason=" + Lines.esc(str(ev.get("reason"))));
              out.flush();
            }
            default -> { } // other types, and types this reader does not know
          }
        }
        if (o.group != null) {
          consumer.commitSync();
        }
      }
    } catch (KafkaException e) {
      err.println("fallback-example: kafka: " + e);
      return 2;
    }

    if (!failed.isEmpty()) {
      err.println("fallback-example: " + failed.size() + " flow(s) did not start: " + failed);
      return 1;
    }
    if (closed.size() < o.expect) {
      List<String> missing = new ArrayList<>();
      for (String id : o.requestIds) {
        if (!closed.containsKey(id) && missing.size() < 20) {
          missing.add(id);
        }
      }
      err.printf("fallback-example: timeout after %ss: %d of %d flow(s) closed%s%n", fmt(o.timeoutSeconds),
          closed.size(), o.expect, missing.isEmpty() ? "" : "; still open: " + String.join(" ", missing));
      return 1;
    }
    err.println("fallback-example: all " + closed.size() + " flow(s) closed");
    return 0;
  }

  static boolean ours(Options o, String requestId) {
    if (!o.requestIds.isEmpty()) {
      return o.requestIds.contains(requestId);
    }
    return o.prefix == null || requestId.startsWith(o.prefix + "-");
  }

  static Properties consumerProps(Options o) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.brokers);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "fallback-example-java");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // committed after each poll's events are printed
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, o.fromBeginning ? "earliest" : "latest");
    if (o.group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, o.group);
    }
    return p;
  }

  /** Subscribes in the group, or assigns every partition at its start or end. */
  static boolean start(KafkaConsumer<byte[], byte[]> consumer, Options o, PrintStream err) {
    if (o.group != null) {
      consumer.subscribe(List.of(o.topic));
      return true;
    }
    List<PartitionInfo> infos = consumer.partitionsFor(o.topic, Duration.ofSeconds(10));
    if (infos == null || infos.isEmpty()) {
      err.println("fallback-example: events topic " + o.topic
          + " not found: is the processor running with this topic name?");
      return false;
    }
    List<TopicPartition> tps = new ArrayList<>();
    for (PartitionInfo pi : infos) {
      tps.add(new TopicPartition(pi.topic(), pi.partition()));
    }
    consumer.assign(tps);
    if (o.fromBeginning) {
      consumer.seekToBeginning(tps);
    } else {
      consumer.seekToEnd(tps);
    }
    for (TopicPartition tp : tps) {
      consumer.position(tp); // now, not lazily at the first poll: nothing published after this is missed
    }
    return true;
  }

  static String header(ConsumerRecord<byte[], byte[]> rec, String key) {
    Header h = rec.headers().lastHeader(key);
    return h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
  }

  static String str(Object v) {
    return v == null ? null : v.toString(); // Avro strings come as Utf8
  }

  static String fmt(double d) {
    return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
  }

  static String envOr(String name, String def) {
    String v = System.getenv(name);
    return v == null || v.isEmpty() ? def : v;
  }

  static Options parse(String[] args) {
    Options o = new Options();
    String env = System.getenv("FALLBACK_SCHEMAS_DIR");
    o.schemas = env == null || env.isEmpty() ? defaultSchemas() : Path.of(env);
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      String value = null;
      int eq = a.indexOf('=');
      if (a.startsWith("--") && eq > 0) {
        value = a.substring(eq + 1);
        a = a.substring(0, eq);
      }
      switch (a) {
        case "-h", "--help" -> {
          return null;
        }
        case "--from-beginning" -> {
          if (value != null) {
            throw new IllegalArgumentException("--from-beginning takes no value");
          }
          o.fromBeginning = true;
        }
        case "--brokers", "--topic", "--schemas", "--group", "--request-ids", "--prefix", "--expect", "--timeout" -> {
          if (value == null) {
            if (i + 1 >= args.length) {
              throw new IllegalArgumentException(a + " needs a value");
            }
            value = args[++i];
          }
          switch (a) {
            case "--brokers" -> o.brokers = value;
            case "--topic" -> o.topic = value;
            case "--schemas" -> o.schemas = Path.of(value);
            case "--group" -> o.group = value;
            case "--prefix" -> o.prefix = value;
            case "--request-ids" -> {
              for (String id : value.split(",")) {
                if (!id.isBlank()) {
                  o.requestIds.add(id.strip());
                }
              }
            }
            case "--expect" -> o.expect = parseNumber(a, value).intValue();
            case "--timeout" -> o.timeoutSeconds = parseNumber(a, value).doubleValue();
            default -> throw new IllegalStateException(a);
          }
        }
        default -> throw new IllegalArgumentException("unknown option " + a);
      }
    }
    if (o.expect < 0) {
      if (o.requestIds.isEmpty()) {
        throw new IllegalArgumentException("give --request-ids, or --expect N (with --prefix P or alone)");
      }
      o.expect = o.requestIds.size();
    }
    if (!o.requestIds.isEmpty() && o.expect > o.requestIds.size()) {
      throw new IllegalArgumentException("--expect is more than the --request-ids given");
    }
    if (o.expect == 0) {
      throw new IllegalArgumentException("--expect must be at least 1");
    }
    if (!(o.timeoutSeconds > 0)) {
      throw new IllegalArgumentException("--timeout must be above 0");
    }
    return o;
  }

  static Number parseNumber(String flag, String v) {
    try {
      return flag.equals("--expect") ? Integer.parseInt(v) : Double.parseDouble(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(flag + ": " + v + " is not a number");
    }
  }

  /** The repository's schemas/: the jar is examples/java/target/fallback-example.jar. */
  static Path defaultSchemas() {
    try {
      Path jar = Path.of(ClosedFlows.class.getProtectionDomain().getCodeSource().getLocation().toURI());
      Path dir = jar.getParent();
      for (int up = 0; up < 3 && dir != null; up++) {
        dir = dir.getParent();
      }
      if (dir != null && Files.isRegularFile(dir.resolve("schemas/FlowEvent.avsc"))) {
        return dir.resolve("schemas");
      }
    } catch (Exception e) {
      // not from a jar on disk: fall through
    }
    return Path.of("schemas");
  }

  private ClosedFlows() {}
}
