#!/usr/bin/env python3
"""Publish fallback send requests and print one line per closed flow.

A platform-side example of the fallbackd.v1 wire contract
(schemas/README.md), with confluent-kafka and fastavro:

  1. publishes --count send requests to the requests topic exactly as the Go
     client does (client.RequestRecord): key = request_id, value = plain Avro
     binary of schemas/SendRequest.avsc, headers fallback.schema (the
     record's full name) and fallback.schema.fp (the CRC-64-AVRO fingerprint
     of its Parsing Canonical Form, 16 lowercase hex digits). Each request
     carries its steps, or, with --flow-id, every third one names a flow
     stored on the flows topic instead (fallback flows put --publish);
  2. reads the events topic (schemas/FlowEvent.avsc, the writer's schema
     picked by the fallback.schema.fp header, so records written with an
     earlier version in schemas/previous/ still decode) and prints, for every
     FLOW_CLOSED of its requests, one line:

       CLOSED request_id=<id> outcome=<outcome> channel=<channel|-> delivered_step=<n|-> steps=<n> fallbacks=<n> time_to_outcome_ms=<n> late=<bool> multi_channel=<bool>

     (examples/README.md describes every field and the escaping);
  3. exits 0 once every request it published has closed, 1 on timeout or
     when the processor rejected one of them (REQUEST_REJECTED), 2 on a bad
     option or setup error.

stdout carries only the PUBLISHED, CLOSED and REJECTED lines; progress and
errors go to stderr. The recipient is printed masked and the template
parameters never.

Plaintext Kafka only; for TLS and SASL add librdkafka's security.protocol,
ssl.ca.location, sasl.mechanism, sasl.username and sasl.password to the
configs below (docs/security.md lists what the brokers expect).

    python3 fallback_example.py --brokers 127.0.0.1:9092 --count 5 --delay-seconds 5
"""

import argparse
import datetime
import io
import json
import os
import secrets
import sys
import time

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import OFFSET_BEGINNING
from fastavro.schema import UnknownType, fingerprint, parse_schema, to_parsing_canonical_form

HEADER_SCHEMA = "fallback.schema"
HEADER_FINGERPRINT = "fallback.schema.fp"

DEFAULT_SCHEMAS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas"))


class SetupError(Exception):
    """A setup problem (no events topic, a request not published): exit 2."""


def log(*args):
    print("fallback_example:", *args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- schemas


def load_schema_file(schemas_dir, relpath):
    """Parses schemas_dir/relpath. Each .avsc of the contract is
    self-contained today; should one reference a named type defined in
    another file instead (fallbackd.v1.FlowSummary), that file
    (FlowSummary.avsc) is parsed first into the same named_schemas, and the
    result is expanded so that its canonical form, and so its fingerprint,
    is the same as the self-contained one's."""
    deps = []  # files of referenced named types, parsed first, in order
    while True:
        named = {}
        try:
            for dep in deps:
                parse_schema(read_json(schemas_dir, dep), named_schemas=named, expand=True)
            return parse_schema(read_json(schemas_dir, relpath), named_schemas=named, expand=True)
        except UnknownType as e:
            dep = e.name.rsplit(".", 1)[-1] + ".avsc"
            if dep in deps or not os.path.exists(os.path.join(schemas_dir, dep)):
                raise
            deps.insert(0, dep)


def read_json(schemas_dir, relpath):
    with open(os.path.join(schemas_dir, relpath), encoding="utf-8") as f:
        return json.load(f)


def schema_fingerprint(parsed):
    return fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")


class Record:
    """One record of the contract: the current schema, and every schema a
    writer may have used (current and schemas/previous/<Name>.<n>.avsc) by
    fingerprint."""

    def __init__(self, schemas_dir, name):
        self.current = load_schema_file(schemas_dir, name + ".avsc")
        self.full_name = self.current["name"]
        self.fingerprint = schema_fingerprint(self.current)
        self.writers = {self.fingerprint: self.current}
        n = 1
        while os.path.exists(os.path.join(schemas_dir, "previous", "%s.%d.avsc" % (name, n))):
            old = load_schema_file(schemas_dir, os.path.join("previous", "%s.%d.avsc" % (name, n)))
            self.writers[schema_fingerprint(old)] = old
            n += 1

    def encode(self, value):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.current, value)
        return buf.getvalue()

    def decode(self, headers, value):
        """Decodes value with the writer's schema named by its fingerprint
        header (the current one when there is no header), resolved to the
        current schema. Returns None for a fingerprint it does not know: a
        record of a newer schema, which the caller skips.

        A value in the Confluent wire format (byte 0, a 4-byte schema id,
        then the Avro binary: a processor run with a schema registry) is
        read past that header; the fingerprint header names the body's
        schema all the same. A plain FlowEvent never starts with byte 0: its
        first field, event_id, is a non-empty string."""
        if len(value) >= 5 and value[0] == 0:
            value = value[5:]
        fp = header(headers, HEADER_FINGERPRINT)
        writer = self.current if fp is None else self.writers.get(fp)
        if writer is None:
            return None
        reader = None if writer is self.current else self.current
        buf = io.BytesIO(value)
        rec = fastavro.schemaless_reader(buf, writer, reader)
        if buf.tell() != len(value):
            raise ValueError("trailing bytes after the record")
        return rec


def header(headers, key):
    for k, v in headers or ():
        if k == key:
            return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v
    return None


# ---------------------------------------------------------------- output


SAFE = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/@+*-")


def esc(value):
    """A value of an output line: None is "-"; otherwise the UTF-8 bytes,
    each byte outside [A-Za-z0-9._~:/@+*-] as %XX (uppercase hex), and a
    value that is exactly "-" as %2D, so that a line splits on spaces and
    "=" and no value is confused with "none". The Java example does the
    same."""
    if value is None:
        return "-"
    if value == "-":
        return "%2D"
    return "".join(chr(b) if b in SAFE else "%%%02X" % b for b in str(value).encode("utf-8"))


def closed_line(ev):
    """The CLOSED line of a FLOW_CLOSED event (examples/README.md)."""
    s = ev["summary"]
    delivered = s["delivered_step"]
    steps = s["steps"]
    channel = None
    if delivered is not None:
        channel = next((st["channel"] for st in steps if st["step"] == delivered), None)
    fallbacks = sum(1 for st in steps if st["reason"] != "initial")
    return "CLOSED request_id=%s outcome=%s channel=%s delivered_step=%s steps=%d fallbacks=%d time_to_outcome_ms=%d late=%s multi_channel=%s" % (
        esc(ev["request_id"]),
        esc(s["outcome"]),
        esc(channel),
        esc(delivered),
        s["steps_used"],
        fallbacks,
        s["time_to_outcome_ms"],
        "true" if ev["late"] else "false",
        "true" if s["multi_channel_delivery"] else "false",
    )


def mask_phone(n):
    """The processor's processor.MaskPhone: the first three characters and
    the last two stay."""
    if len(n) <= 5:
        return "***"
    return n[:3] + "*" * (len(n) - 5) + n[-2:]


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description="Publish fallback send requests and print one CLOSED line per closed flow.")
    p.add_argument("--brokers", default=os.environ.get("FALLBACK_BROKERS") or "127.0.0.1:9092",
                   help="Kafka seed brokers, comma-separated (default $FALLBACK_BROKERS or 127.0.0.1:9092)")
    p.add_argument("--topic-requests", default=os.environ.get("FALLBACK_TOPIC_REQUESTS") or "fallback.requests",
                   help="requests topic (default $FALLBACK_TOPIC_REQUESTS or fallback.requests)")
    p.add_argument("--topic-events", default=os.environ.get("FALLBACK_TOPIC_EVENTS") or "fallback.events",
                   help="events topic (default $FALLBACK_TOPIC_EVENTS or fallback.events)")
    p.add_argument("--schemas", default=DEFAULT_SCHEMAS, help="directory of the .avsc files (default: the repository's schemas/)")
    p.add_argument("--prefix", default=None,
                   help="request id prefix; the ids are <prefix>-<n> (default example-<unix seconds>-<random hex>)")
    p.add_argument("--count", type=int, default=1, help="send requests to publish (default 1); 0 publishes none and only waits")
    p.add_argument("--expect", type=int, default=None,
                   help="closed flows to wait for (default --count); with --count 0, flows whose request id starts with --prefix")
    p.add_argument("--from-beginning", action="store_true",
                   help="read the events topic from its start (default: from its end as it was before publishing)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the flows to close (default 120)")
    p.add_argument("--recipient", default="+4915112345678", help="recipient (E.164); printed masked")
    p.add_argument("--delay-seconds", type=int, default=30, help="each step's delay, 5..900 (default 30)")
    p.add_argument("--whatsapp-success-on", choices=("delivered", "read", "alternate"), default="delivered",
                   help="the WhatsApp step's success condition: delivered (default), read, or alternate "
                        "(read for odd-numbered requests, delivered for even ones)")
    p.add_argument("--flow-id", default=None,
                   help="a published flow stored on the flows topic (fallback flows put --publish): every third request "
                        "(the 3rd, 6th, ...) names it instead of carrying its steps; default: every request carries its steps")
    p.add_argument("--schema-registry", default=None,
                   help="a Confluent Schema Registry URL: read the events with confluent-kafka's AvroDeserializer, "
                        "which takes only the Confluent wire format (fallback run --schema-registry); "
                        "default: plain Avro by the fingerprint header")
    args = p.parse_args(argv)
    if args.count < 0 or (args.expect is not None and args.expect < 0):
        p.error("--count and --expect must not be negative")
    if args.expect is None:
        args.expect = args.count
    if args.count > 0 and args.expect > args.count:
        p.error("--expect is more than --count: only published requests are waited for")
    if args.count == 0 and (args.prefix is None or args.expect == 0):
        p.error("--count 0 needs --prefix and --expect N (the flows to wait for)")
    if not 5 <= args.delay_seconds <= 900:
        p.error("--delay-seconds must be 5..900")
    if args.prefix is None:
        args.prefix = "example-%d-%s" % (int(time.time()), secrets.token_hex(3))
    return args


def send_request(request_id, recipient, delay, success_on, flow_id=None):
    """A send request: with flow_id, naming that stored flow (its steps are
    the flow's, so delay and success_on do not apply); else with its steps.
    The fields the steps leave out (variables, fixed_text, failure_codes)
    take their schema defaults."""
    now = datetime.datetime.now(datetime.timezone.utc)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # timestamp-millis
    steps = None
    if flow_id is None:
        steps = [
            {"channel": "whatsapp", "from": "+4915100000000", "template": "otp",
             "template_category": "authentication", "delay_seconds": delay, "success_on": success_on},
            {"channel": "sms", "from": "ACME", "template": "otp_sms",
             "template_category": None, "delay_seconds": delay, "success_on": "delivered"},
        ]
    return {
        "request_id": request_id,
        "kind": "send",
        "recipient": recipient,
        "flow_id": flow_id,
        "steps": steps,
        "params": {"code": "%06d" % secrets.randbelow(10**6)},
        "metadata": {"source": "examples/python"},
        "requested_at": now,
        "expires_at": None,
    }


def start_consumer(args):
    """A consumer assigned every partition of the events topic, at its start
    (--from-beginning) or at its current end: taken before publishing, so no
    event of the new requests is missed. No consumer group: nothing is
    committed."""
    c = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": "fallback-example-python-unused",  # required by the client; assign() joins no group
        "enable.auto.commit": False,
        "client.id": "fallback-example-python",
    })
    # A topic created a moment ago may take a moment to show in every
    # broker's metadata: ask again for up to 10 s.
    deadline = time.monotonic() + 10
    while True:
        t = c.list_topics(args.topic_events, timeout=10).topics.get(args.topic_events)
        if (t is not None and t.error is None and t.partitions) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if t is None or t.error is not None or not t.partitions:
        c.close()
        raise SetupError("events topic %s not found (%s): is the processor running with these topic names?"
                         % (args.topic_events, t.error if t is not None else "no metadata"))
    tps = []
    for p in sorted(t.partitions):
        if args.from_beginning:
            off = OFFSET_BEGINNING
        else:
            _, off = c.get_watermark_offsets(TopicPartition(args.topic_events, p), timeout=10)
        tps.append(TopicPartition(args.topic_events, p, off))
    c.assign(tps)
    return c


def publish(args, send_req, ids):
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append("%s: %s" % (msg.key().decode("utf-8", "replace"), err))

    p = Producer({
        "bootstrap.servers": args.brokers,
        "acks": "all",               # as the Go client: every in-sync replica has it
        "enable.idempotence": True,  # a retried produce never duplicates
        # Java's and franz-go's partitioner (murmur2 of the key): a cancel
        # published by another client lands on its send's partition.
        "partitioner": "murmur2_random",
        "client.id": "fallback-example-python",
    })
    headers = [(HEADER_SCHEMA, send_req.full_name.encode()), (HEADER_FINGERPRINT, send_req.fingerprint.encode())]
    for i, rid in enumerate(ids, 1):
        success_on = args.whatsapp_success_on
        if success_on == "alternate":
            success_on = "read" if i % 2 else "delivered"
        flow_id = args.flow_id if args.flow_id and i % 3 == 0 else None
        req = send_request(rid, args.recipient, args.delay_seconds, success_on, flow_id)
        p.produce(args.topic_requests, key=rid.encode("utf-8"), value=send_req.encode(req), headers=headers,
                  on_delivery=on_delivery)
        p.poll(0)
        print("PUBLISHED request_id=%s recipient=%s flow_id=%s" % (esc(rid), esc(mask_phone(args.recipient)), esc(flow_id)),
              flush=True)
    left = p.flush(30)
    if left or errors:
        raise SetupError("not published: %s" % ("; ".join(errors) or "%d records still queued" % left))


def event_decoder(args, flow_event):
    """The events' decoder: by the fingerprint header (plain Avro, or past
    the Confluent header), or, with --schema-registry, Confluent's own
    AvroDeserializer, which looks the writer schema up by the id the value
    starts with and refuses a value without it."""
    if not args.schema_registry:
        return lambda msg: flow_event.decode(msg.headers(), msg.value())
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": args.schema_registry}))
    return lambda msg: deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))


def main(argv):
    args = parse_args(argv)
    try:
        send_req = Record(args.schemas, "SendRequest")
        flow_event = Record(args.schemas, "FlowEvent")
    except (OSError, ValueError) as e:
        log("cannot load the schemas from %s: %s" % (args.schemas, e))
        return 2

    decode = event_decoder(args, flow_event)
    ids = ["%s-%d" % (args.prefix, i) for i in range(1, args.count + 1)]
    wanted = set(ids)

    def ours(rid):
        return rid in wanted if wanted else rid.startswith(args.prefix + "-")

    try:
        consumer = start_consumer(args)
    except (KafkaException, SetupError) as e:
        log(e)
        return 2
    try:
        if ids:
            publish(args, send_req, ids)
            log("published %d send request(s) to %s, prefix %s; waiting for %d flow(s) to close on %s"
                % (len(ids), args.topic_requests, args.prefix, args.expect, args.topic_events))
        closed, failed, seen_events = {}, {}, set()
        deadline = time.monotonic() + args.timeout
        while len(closed) + len(failed) < args.expect and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log("kafka (retried): %s" % msg.error())
                continue
            try:
                ev = decode(msg)
            except Exception as e:  # fastavro raises several kinds; the record is skipped either way
                log("skipping an event that does not decode at %s/%d/%d: %r" % (msg.topic(), msg.partition(), msg.offset(), e))
                continue
            if ev is None:
                log("skipping an event of an unknown schema (%s %s) at %s/%d/%d"
                    % (header(msg.headers(), HEADER_SCHEMA), header(msg.headers(), HEADER_FINGERPRINT),
                       msg.topic(), msg.partition(), msg.offset()))
                continue
            # The same fact may come twice (a processor re-emits an owed
            # event after a crash, with the same event_id).
            if ev["event_id"] in seen_events or not ours(ev["request_id"]):
                continue
            seen_events.add(ev["event_id"])
            rid, typ = ev["request_id"], ev["type"]
            if rid in closed or rid in failed:
                continue
            if typ == "FLOW_CLOSED" and ev["summary"] is None:
                log("%s: FLOW_CLOSED without a summary (event %s): skipped" % (rid, ev["event_id"]))
            elif typ == "FLOW_CLOSED":
                closed[rid] = closed_line(ev)
                print(closed[rid], flush=True)
            elif typ == "REQUEST_REJECTED":
                failed[rid] = "rejected: %s" % ev.get("reason")
                print("REJECTED request_id=%s reason=%s" % (esc(rid), esc(ev.get("reason"))), flush=True)
            elif typ == "REQUEST_DUPLICATE" and rid in wanted:
                # Another request had this id: its flow is not ours.
                failed[rid] = "duplicate request id (%s)" % ev.get("reason")
                log("%s: REQUEST_DUPLICATE (%s): choose another --prefix" % (rid, ev.get("reason")))
    except (KafkaException, SetupError) as e:
        log(e)
        return 2
    finally:
        consumer.close()

    if failed:
        log("%d flow(s) did not start: %s" % (len(failed), "; ".join("%s %s" % kv for kv in sorted(failed.items()))))
        return 1
    if len(closed) < args.expect:
        missing = sorted(wanted - closed.keys()) if wanted else []
        log("timeout after %gs: %d of %d flow(s) closed%s" % (args.timeout, len(closed), args.expect,
            "; still open: " + " ".join(missing[:20]) + (" ..." if len(missing) > 20 else "") if missing else ""))
        return 1
    log("all %d flow(s) closed" % len(closed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
