package io.github.fallbackd.examples;

import java.nio.charset.StandardCharsets;
import java.util.List;

import org.apache.avro.generic.GenericRecord;

/** The output lines, the same as the Python example's (examples/README.md). */
final class Lines {
  /**
   * The CLOSED line of a FLOW_CLOSED event: request_id, the outcome, the
   * channel of the step that delivered (- when none did), that step, the steps
   * sent, how many of them were fallbacks (sent for a failure or a timeout),
   * the time from request to outcome, late, and multi-channel delivery.
   */
  static String closed(GenericRecord ev) {
    GenericRecord s = (GenericRecord) ev.get("summary");
    Object delivered = s.get("delivered_step");
    @SuppressWarnings("unchecked")
    List<GenericRecord> steps = (List<GenericRecord>) s.get("steps");
    String channel = null;
    int fallbacks = 0;
    for (GenericRecord st : steps) {
      if (delivered != null && delivered.equals(st.get("step"))) {
        channel = st.get("channel").toString();
      }
      if (!"initial".equals(st.get("reason").toString())) {
        fallbacks++;
      }
    }
    return "CLOSED request_id=" + esc(ev.get("request_id"))
        + " outcome=" + esc(s.get("outcome"))
        + " channel=" + esc(channel)
        + " delivered_step=" + esc(delivered)
        + " steps=" + s.get("steps_used")
        + " fallbacks=" + fallbacks
        + " time_to_outcome_ms=" + s.get("time_to_outcome_ms")
        + " late=" + ev.get("late")
        + " multi_channel=" + s.get("multi_channel_delivery");
  }

  private static final boolean[] SAFE = new boolean[128];

  static {
    for (char c : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/@+*-".toCharArray()) {
      SAFE[c] = true;
    }
  }

  /**
   * A value of a line: null is "-"; otherwise its UTF-8 bytes, each outside
   * [A-Za-z0-9._~:/@+*-] as %XX (uppercase hex), and a value of exactly "-" as
   * %2D, so that lines split on spaces and "=".
   */
  static String esc(Object v) {
    if (v == null) {
      return "-";
    }
    String s = v.toString();
    if (s.equals("-")) {
      return "%2D";
    }
    StringBuilder sb = new StringBuilder(s.length());
    for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
      int c = b & 0xff;
      if (c < 128 && SAFE[c]) {
        sb.append((char) c);
      } else {
        sb.append('%').append(String.format("%02X", c));
      }
    }
    return sb.toString();
  }

  private Lines() {}
}
