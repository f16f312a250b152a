#!/usr/bin/env python3
"""Checks what the Python and Java examples printed (examples/run.sh calls it).

    check_outputs.py --python python.out --java java.out --count N --schemas DIR \\
        [--fallback BIN --redis URL --redis-prefix P]

Standard library only. It checks that:
  - the Python example published N distinct request ids (PUBLISHED lines);
  - each example printed exactly one CLOSED line per published id, none for
    another id, and no other line;
  - the two sets of CLOSED lines are equal, line for line once sorted;
  - every line parses (the fields of examples/README.md, in order), its
    outcome is one of those schemas/FlowSummary.avsc lists, and it names a
    delivering channel and step exactly when the outcome is a success
    (DELIVERED, READ), with fallbacks = steps - 1;
  - with --fallback, every line agrees with the processor's own state of the
    flow in Redis, read with `fallback flow --json` (outcome, delivering step
    and its channel, steps sent, fallbacks, time to outcome, late), and the
    flow ran the stored flow its request named (PUBLISHED ... flow_id=), or
    none;
  - with --flow-id, some requests named that stored flow.
Every mismatch is printed (FAILED: ...), then it exits 1; 0 when all hold.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import urllib.parse

FIELDS = ["request_id", "outcome", "channel", "delivered_step", "steps", "fallbacks",
          "time_to_outcome_ms", "late", "multi_channel"]
SUCCESS = {"DELIVERED", "READ"}
VALUE = r"[A-Za-z0-9._~:/@+*%-]+"
CLOSED_RE = re.compile("^CLOSED " + " ".join("%s=(%s)" % (f, VALUE) for f in FIELDS) + "$")

failures = []


def fail(msg):
    failures.append(msg)
    print("FAILED: " + msg, file=sys.stderr)


def unescape(v):
    """A line's value as it was: "-" is none, %XX a byte (examples/README.md)."""
    return None if v == "-" else urllib.parse.unquote(v)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def closed_lines(name, lines, published):
    """The CLOSED lines of one example, by request id, after checking them."""
    by_id = {}
    for line in lines:
        if line.startswith("PUBLISHED ") and name == "python":
            continue
        m = CLOSED_RE.match(line)
        if m is None:
            fail("%s printed a line that is not a CLOSED line of the documented format: %s" % (name, line))
            continue
        rid = unescape(m.group(1))
        if rid in by_id:
            fail("%s printed more than one CLOSED line for %s" % (name, m.group(1)))
        by_id[rid] = line
    missing = [i for i in published if i not in by_id]
    extra = [i for i in by_id if i not in published]
    if missing:
        fail("%s printed no CLOSED line for %d published id(s): %s" % (name, len(missing), " ".join(sorted(missing))))
    if extra:
        fail("%s printed CLOSED lines for ids that were not published: %s" % (name, " ".join(sorted(extra))))
    return by_id


def outcomes_of(schemas_dir):
    """The outcomes FlowSummary.outcome's doc lists ("one of: A, B, ...")."""
    with open(os.path.join(schemas_dir, "FlowSummary.avsc"), encoding="utf-8") as f:
        schema = json.load(f)
    doc = next(fl["doc"] for fl in schema["fields"] if fl["name"] == "outcome")
    m = re.search(r"one of: ([A-Z_, ]+)\.", doc)
    if m is None:
        raise SystemExit("check_outputs: no outcome list in the doc of FlowSummary.outcome: %r" % doc)
    return [o.strip() for o in m.group(1).split(",")]


def fields(line):
    return dict(zip(FIELDS, CLOSED_RE.match(line).groups()))


def check_line(rid, f, outcomes):
    o = f["outcome"]
    if o not in outcomes:
        fail("%s: outcome %s is not one of %s" % (rid, o, ", ".join(outcomes)))
    delivered = f["channel"] != "-" and f["delivered_step"] != "-"
    none = f["channel"] == "-" and f["delivered_step"] == "-"
    if o in SUCCESS and not delivered:
        fail("%s: outcome %s names no delivering channel and step" % (rid, o))
    if o not in SUCCESS and not none:
        fail("%s: outcome %s names a delivering channel or step" % (rid, o))
    if int(f["fallbacks"]) != int(f["steps"]) - 1:
        fail("%s: %s fallbacks for %s steps sent" % (rid, f["fallbacks"], f["steps"]))


def check_state(rid, f, args, flow_id):
    """The line against `fallback flow --json` (docs/flow-command.md);
    flow_id is the stored flow the request named, None for inline steps."""
    cmd = [args.fallback, "flow", "--json", "--redis", args.redis, "--redis-prefix", args.redis_prefix, rid]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        fail("%s: fallback flow: %s" % (rid, p.stderr.strip() or "exit %d" % p.returncode))
        return
    st = json.loads(p.stdout)
    d = st["delivered_step"]
    sent = [s for s in st["steps"] if s["sent"]]
    want = {
        "outcome": st["outcome"] or "(active)",
        "channel": next((s["channel"] for s in st["steps"] if s["step"] == d), None) if d is not None else None,
        "delivered_step": None if d is None else str(d),
        "steps": str(len(sent)),
        "fallbacks": str(sum(1 for s in sent if s["reason"] != "initial")),
        "time_to_outcome_ms": None if st["time_to_outcome_ms"] is None else str(st["time_to_outcome_ms"]),
        "late": "true" if st["late"] else "false",
    }
    if st["request_id"] != rid:
        fail("%s: fallback flow gave the state of %s" % (rid, st["request_id"]))
    diff = ["%s=%s (Redis: %s)" % (k, f[k], "-" if v is None else v) for k, v in want.items() if unescape(f[k]) != v]
    if diff:
        fail("%s: the CLOSED line and the processor's state in Redis differ: %s" % (rid, ", ".join(diff)))
    if st.get("flow_id") != flow_id:
        fail("%s: the request named stored flow %s, the processor ran %s" % (rid, flow_id, st.get("flow_id")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True, help="the Python example's stdout")
    ap.add_argument("--java", required=True, help="the Java example's stdout")
    ap.add_argument("--count", type=int, required=True, help="how many requests were to be published")
    ap.add_argument("--schemas", required=True, help="the schemas directory")
    ap.add_argument("--fallback", help="the fallback binary, to compare each line with the flow's state in Redis")
    ap.add_argument("--redis", help="the processor's --redis")
    ap.add_argument("--redis-prefix", default="fb", help="the processor's --redis-prefix")
    ap.add_argument("--flow-id", help="a stored flow some of the published requests must have named")
    args = ap.parse_args()

    py = read_lines(args.python)
    published = []
    flow_of = {}  # request id -> the stored flow it named, None for inline steps
    for line in py:
        m = re.match(r"^PUBLISHED request_id=(%s) .*?(?: flow_id=(%s))?$" % (VALUE, VALUE), line)
        if m:
            published.append(unescape(m.group(1)))
            flow_of[published[-1]] = unescape(m.group(2)) if m.group(2) else None
    if len(published) != args.count:
        fail("the Python example published %d request(s), not %d" % (len(published), args.count))
    dups = [i for i, n in collections.Counter(published).items() if n > 1]
    if dups:
        fail("request ids published more than once: %s" % " ".join(dups))
    published = set(published)
    if args.flow_id is not None:
        named = sum(1 for f in flow_of.values() if f == args.flow_id)
        if named == 0:
            fail("no published request named the stored flow %s" % args.flow_id)
        else:
            print("check_outputs: %d of %d requests named the stored flow %s" % (named, len(published), args.flow_id),
                  file=sys.stderr)

    py_closed = closed_lines("python", py, published)
    java_closed = closed_lines("java", read_lines(args.java), published)

    mismatched = 0
    for rid in sorted(published):
        p, j = py_closed.get(rid), java_closed.get(rid)
        if p is not None and j is not None and p != j:
            mismatched += 1
            fail("%s: the examples disagree\n    python: %s\n    java:   %s" % (rid, p, j))
    if not mismatched and sorted(py_closed.values()) == sorted(java_closed.values()) and py_closed:
        print("check_outputs: python and java agree on all %d CLOSED lines" % len(py_closed), file=sys.stderr)

    outcomes = outcomes_of(args.schemas)
    for rid, line in sorted(py_closed.items()):
        f = fields(line)
        check_line(rid, f, outcomes)
        if args.fallback:
            check_state(rid, f, args, flow_of.get(rid))

    # The simulated providers deliver most sends: a run where none was
    # delivered means they could not read the sends (or publish DLRs), and
    # the lines, though they agree, show nothing but expiries.
    if py_closed and not any(fields(l)["outcome"] in ("DELIVERED", "READ") for l in py_closed.values()):
        fail("no flow was delivered: the simulated providers did not answer (did they read the sends?)")

    if failures:
        print("check_outputs: %d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    tally = collections.Counter(fields(l)["outcome"] for l in py_closed.values())
    print("check_outputs: every outcome is one of %s; %s" % (", ".join(outcomes),
          "every line matches the flow's state in Redis" if args.fallback else "Redis not compared"), file=sys.stderr)
    print("check_outputs: outcomes %s" % " ".join("%s=%d" % kv for kv in sorted(tally.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
