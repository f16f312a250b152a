#!/usr/bin/env python3
"""Cross-language check of the fallbackd.v1 Avro contract with fastavro.

Usage:
    crosscheck.py SCHEMA_DIR            parse every .avsc alone, print
                                        name, fingerprint and canonical form
    crosscheck.py SCHEMA_DIR WORK_DIR   full check, driven by the Go test
                                        TestCrossLanguageFastavro

In the full check, WORK_DIR holds manifest.json and binary records written
by the Go codecs (plain Avro binary, no framing). For every schema the
script:
  - parses the .avsc on its own (fastavro.schema.parse_schema, with no other
    file) and with fastavro.schema.load_schema;
  - checks that fastavro's Parsing Canonical Form and CRC-64-AVRO
    fingerprint equal the Go ones;
  - decodes every Go record with schemaless_reader and checks that exactly
    all the bytes were consumed;
  - writes the decoded record as JSON (<file>.json: timestamps as epoch
    milliseconds, bytes as {"$bytes": hex}) for Go to compare field by field;
  - re-encodes the record with schemaless_writer (<file>.py.bin) for Go to
    decode.
Then, for every earlier version SCHEMA_DIR/previous/<Record>.<n>.avsc, it
writes each decoded record of that Record with the earlier schema and reads
it back with the earlier schema as writer and the current one as reader
(Avro schema resolution, as a consumer with the new schema reading old
records does): the fields the earlier version lacks, at any depth (e.g.
Step's inside SendRequest.steps), must take their defaults, the others
keep their values. It keeps the earlier version's bytes
(<file>.prev.<Record>.<n>.bin) and fastavro's resolution of them
(<file>.prev.<Record>.<n>.json) for Go to compare with its DecodeFrom.
It exits 1 on the first broken schema, after printing what broke.

Requires fastavro (pip install fastavro).
"""

import datetime
import io
import json
import os
import sys

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import (
    fingerprint,
    load_schema,
    parse_schema,
    to_parsing_canonical_form,
)

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(value):
    """Turns a decoded record into JSON-friendly values."""
    if isinstance(value, datetime.datetime):
        # Exact integer arithmetic: float seconds would lose milliseconds
        # far from the epoch.
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def parse_alone(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    # parse_schema gets no named_schemas: any reference to a type defined in
    # another file would fail here.
    return raw, parse_schema(raw)


def describe(schema_dir):
    for name in sorted(os.listdir(schema_dir)):
        if not name.endswith(".avsc"):
            continue
        raw, _ = parse_alone(os.path.join(schema_dir, name))
        pcf = to_parsing_canonical_form(raw)
        print(f'{raw["namespace"]}.{raw["name"]} {fingerprint(pcf, "CRC-64-AVRO")}')
        print(f"  {pcf}")


def check(schema_dir, work_dir):
    with open(os.path.join(work_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    records = 0
    decoded = {}  # record name -> (parsed schema, decoded records)
    for entry in manifest["schemas"]:
        path = os.path.join(schema_dir, entry["avsc"])
        what = entry["name"]
        raw, parsed = parse_alone(path)
        load_schema(path)
        if parsed["name"] != what:
            fail(f"{path}: fastavro reads name {parsed['name']}, want {what}")
        pcf = to_parsing_canonical_form(raw)
        if pcf != entry["canonical"]:
            fail(f"{what}: canonical forms differ\n  fastavro {pcf}\n  go       {entry['canonical']}")
        fp = fingerprint(pcf, "CRC-64-AVRO")
        if fp != entry["fingerprint"]:
            fail(f"{what}: fingerprint fastavro {fp}, go {entry['fingerprint']}")
        for file in entry["records"]:
            with open(os.path.join(work_dir, file), "rb") as f:
                data = f.read()
            buf = io.BytesIO(data)
            try:
                record = schemaless_reader(buf, parsed, None)
            except Exception as e:  # report which record, then stop
                fail(f"{what}: {file}: fastavro cannot decode: {e!r}")
            if buf.tell() != len(data):
                fail(f"{what}: {file}: decoded {buf.tell()} of {len(data)} bytes")
            with open(os.path.join(work_dir, file + ".json"), "w", encoding="utf-8") as f:
                json.dump(plain(record), f, ensure_ascii=False, sort_keys=True)
            out = io.BytesIO()
            schemaless_writer(out, parsed, record)
            with open(os.path.join(work_dir, file + ".py.bin"), "wb") as f:
                f.write(out.getvalue())
            decoded.setdefault(what, (raw, parsed, []))[2].append((file, record))
            records += 1
    resolved = check_previous(schema_dir, work_dir, decoded)
    print(f"fastavro: {len(manifest['schemas'])} schemas, {records} records ok, {resolved} resolved from earlier versions")


def check_previous(schema_dir, work_dir, decoded):
    prev_dir = os.path.join(schema_dir, "previous")
    if not os.path.isdir(prev_dir):
        return 0
    resolved = 0
    for name in sorted(os.listdir(prev_dir)):
        if not name.endswith(".avsc"):
            continue
        old_raw, old = parse_alone(os.path.join(prev_dir, name))
        what = f'{old_raw["namespace"]}.{old_raw["name"]}'
        if what not in decoded:
            fail(f"previous/{name}: no current schema {what} with records")
        raw, parsed, samples = decoded[what]
        for file, record in samples:
            out = io.BytesIO()
            schemaless_writer(out, old, record)
            out.seek(0)
            try:
                got = schemaless_reader(out, old, parsed)
            except Exception as e:
                fail(f"{what}: {file} written with previous/{name}: fastavro cannot resolve it: {e!r}")
            try:
                want = expected_resolution(raw, old_raw, record)
            except MissingDefault as e:
                fail(f"{what}: field {e} is not in previous/{name} and has no default")
            if plain(got) != plain(want):
                fail(f"{what}: {file} written with previous/{name} resolves to\n  {plain(got)}\nwant\n  {plain(want)}")
            base = os.path.join(work_dir, f"{file}.prev.{name[: -len('.avsc')]}")
            with open(base + ".bin", "wb") as f:
                f.write(out.getvalue())
            with open(base + ".json", "w", encoding="utf-8") as f:
                json.dump(plain(got), f, ensure_ascii=False, sort_keys=True)
            resolved += 1
    return resolved


class MissingDefault(Exception):
    pass


def expected_resolution(new, old, value):
    """What value, written with the schema old, reads as with the schema new
    (both raw JSON of the same record): the fields old lacks, in any nested
    record, take new's defaults; the rest is value. Our schemas define each
    named type inline, once, and every union is ["null", X]."""
    if isinstance(new, list):
        if value is None:
            return None
        return expected_resolution(new[1], old[1], value)
    if not isinstance(new, dict):
        return value
    kind = new["type"]
    if isinstance(kind, (dict, list)):
        return expected_resolution(kind, old["type"], value)
    if kind == "record":
        old_fields = {f["name"]: f for f in old["fields"]}
        out = {}
        for f in new["fields"]:
            if f["name"] in old_fields:
                out[f["name"]] = expected_resolution(f["type"], old_fields[f["name"]]["type"], value[f["name"]])
            elif "default" in f:
                out[f["name"]] = f["default"]
            else:
                raise MissingDefault(f"{new['name']}.{f['name']}")
        return out
    if kind == "array":
        return [expected_resolution(new["items"], old["items"], v) for v in value]
    if kind == "map":
        return {k: expected_resolution(new["values"], old["values"], v) for k, v in value.items()}
    return value


def fail(message):
    print("crosscheck: " + message, file=sys.stderr)
    sys.exit(1)


def main(argv):
    if len(argv) == 2:
        describe(argv[1])
    elif len(argv) == 3:
        check(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
