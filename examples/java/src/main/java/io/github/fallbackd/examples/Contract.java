package io.github.fallbackd.examples;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.SchemaParser;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;

/** The fallbackd.v1 wire contract (schemas/README.md), read from the repository's .avsc files. */
final class Contract {
  static final String HEADER_SCHEMA = "fallback.schema";
  static final String HEADER_FINGERPRINT = "fallback.schema.fp";

  /** One record: its current schema and every schema a writer may have used, by fingerprint. */
  static final class Record {
    final Schema current;
    final String fingerprint;
    private final Map<String, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
    private BinaryDecoder decoder;

    Record(Schema current, List<Schema> previous) {
      this.current = current;
      this.fingerprint = fingerprint(current);
      readers.put(fingerprint, new GenericDatumReader<>(current));
      for (Schema old : previous) {
        // Avro schema resolution: written with the old schema, read as the
        // current one (the fields the old one lacks take their defaults).
        readers.putIfAbsent(fingerprint(old), new GenericDatumReader<>(old, current));
      }
    }

    /**
     * Decodes value, written with the schema the fingerprint header names (the
     * current one when there is no header); null when the fingerprint is
     * unknown, a record of a newer schema the caller skips.
     *
     * <p>A value in the Confluent wire format (byte 0, a 4-byte schema id, then
     * the Avro binary: a processor run with a schema registry) is read past
     * that header; the fingerprint header names the body's schema all the
     * same. A plain FlowEvent never starts with byte 0: its first field,
     * event_id, is a non-empty string.
     */
    GenericRecord decode(String fp, byte[] value) throws IOException {
      GenericDatumReader<GenericRecord> r = readers.get(fp == null ? fingerprint : fp);
      if (r == null) {
        return null;
      }
      int off = value.length >= 5 && value[0] == 0 ? 5 : 0;
      decoder = DecoderFactory.get().binaryDecoder(value, off, value.length - off, decoder);
      GenericRecord rec = r.read(null, decoder);
      if (!decoder.isEnd()) {
        throw new IOException("trailing bytes after the record");
      }
      return rec;
    }
  }

  /**
   * Loads dir/NAME.avsc and every dir/previous/NAME.n.avsc. Each file of the
   * contract is self-contained today; the other top-level .avsc files are
   * parsed with it all the same, so that a file referring to a named type
   * defined in another (fallbackd.v1.FlowSummary in FlowSummary.avsc) still
   * resolves. Avro's SchemaParser accepts the identical inline copies.
   */
  static Record load(Path dir, String name) throws IOException {
    Path main = dir.resolve(name + ".avsc");
    if (!Files.isRegularFile(main)) {
      throw new IOException(main + " not found");
    }
    Schema current = parseWith(main, siblings(dir, main));
    List<Schema> previous = new ArrayList<>();
    for (int n = 1; ; n++) {
      Path old = dir.resolve("previous").resolve(name + "." + n + ".avsc");
      if (!Files.isRegularFile(old)) {
        break;
      }
      Schema s;
      try {
        s = parseWith(old, List.of()); // an earlier version stands alone
      } catch (RuntimeException e) {
        s = parseWith(old, siblings(dir, main)); // or refers to the current named types
      }
      previous.add(s);
    }
    return new Record(current, previous);
  }

  private static List<Path> siblings(Path dir, Path except) throws IOException {
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.avsc")) {
      for (Path p : ds) {
        if (!p.equals(except)) {
          files.add(p);
        }
      }
    }
    files.sort(null);
    return files;
  }

  private static Schema parseWith(Path file, List<Path> others) throws IOException {
    SchemaParser parser = new SchemaParser();
    for (Path p : others) {
      parser.parse(p);
    }
    return parser.resolve(parser.parse(file));
  }

  /**
   * The header's form of the fingerprint: CRC-64-AVRO of the Parsing
   * Canonical Form, its 8 bytes (little-endian) in lowercase hex.
   */
  static String fingerprint(Schema s) {
    byte[] fp;
    try {
      fp = SchemaNormalization.parsingFingerprint("CRC-64-AVRO", s);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    StringBuilder sb = new StringBuilder(16);
    for (byte b : fp) {
      sb.append(String.format("%02x", b & 0xff));
    }
    return sb.toString();
  }

  private Contract() {}
}
