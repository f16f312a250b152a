package statestore

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A flow is one Redis string, so that a change is one GET and one SET and
// Redis keeps it in one allocation (a hash would switch to its large
// encoding as soon as the state passes hash-max-listpack-value, 64 bytes,
// and cost several times the memory):
//
//	<version>[,<owed version>...]|<state blob>
//
// The header is ASCII decimal; the blob is the processor's, opaque here.
// The owed versions are the earlier versions of the flow whose outputs were
// not known to be acked when the record was last written: the next change
// that owes outputs looks those up (one HMGET for all flows of its call)
// and, if they are still owed, returns them to its caller to be produced
// first. Acks do not rewrite the record; a stale entry in the list costs
// one lookup and is dropped at the next write.

// Every number a script compares or writes (versions, scores, TTLs) is
// formatted by Go and passed as an ARGV string. Lua numbers are doubles and
// Redis versions differ in how they print them back (1.7e+12 vs
// 1700000000000); keeping arithmetic out of Lua keeps the keys byte-identical
// whatever the server. Versions are compared as strings for the same reason.

// recordLua is prepended to the scripts that read flow records.
// parse(rec) returns version (string), owed versions (string, possibly
// empty, "," separated) and the blob. record(key) reads a flow's record,
// or false: a flow written by a build before this layout is a hash {v, s},
// read here as the same record (its blob is a format Decode still reads)
// and replaced by a string at its next write, so an upgrade does not stop
// at the first duplicate or late DLR of an old closed flow.
const recordLua = `
local function record(key)
  local rec = redis.pcall('GET', key)
  if type(rec) == 'table' and rec.err then
    local f = redis.call('HMGET', key, 'v', 's')
    if not f[1] then return false end
    return f[1] .. '|' .. (f[2] or '')
  end
  return rec
end
local function parse(rec)
  local bar = string.find(rec, '|', 1, true)
  local head = string.sub(rec, 1, bar - 1)
  local comma = string.find(head, ',', 1, true)
  if comma then
    return string.sub(head, 1, comma - 1), string.sub(head, comma + 1), string.sub(rec, bar + 1)
  end
  return head, '', string.sub(rec, bar + 1)
end
`

// parseRecord splits a stored record into version and state blob.
func parseRecord(rec []byte) (int64, []byte, error) {
	bar := bytes.IndexByte(rec, '|')
	if bar < 0 {
		return 0, nil, fmt.Errorf("bad flow record %.20q", rec)
	}
	head := rec[:bar]
	if c := bytes.IndexByte(head, ','); c >= 0 {
		head = head[:c]
	}
	v, err := strconv.ParseInt(string(head), 10, 64)
	if err != nil || v < 1 {
		return 0, nil, fmt.Errorf("bad flow record version %q", head)
	}
	return v, rec[bar+1:], nil
}

// parseSnapshot reads one reply item that is a flow record or nil.
func parseSnapshot(id string, v any) (Snapshot, error) {
	snap := Snapshot{RequestID: id}
	if v == nil {
		return snap, nil
	}
	rec := toBytes(v)
	if rec == nil {
		return snap, fmt.Errorf("unexpected reply %T", v)
	}
	var err error
	if snap.Version, snap.State, err = parseRecord(rec); err != nil {
		return snap, err
	}
	snap.Exists = true
	return snap, nil
}

// owedField is the outbox hash field and owed-set member of a flow version.
func owedField(requestID string, version int64) string {
	return requestID + ":" + strconv.FormatInt(version, 10)
}

// parseOwedField splits an owed field at its last ':' (request ids may
// contain ':', versions do not).
func parseOwedField(f string) (string, int64, bool) {
	i := strings.LastIndexByte(f, ':')
	if i <= 0 {
		return "", 0, false
	}
	v, err := strconv.ParseInt(f[i+1:], 10, 64)
	if err != nil || v < 1 {
		return "", 0, false
	}
	return f[:i], v, true
}

func toString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	case int64:
		return strconv.FormatInt(t, 10)
	}
	return ""
}

func toBytes(v any) []byte {
	switch t := v.(type) {
	case string:
		return []byte(t)
	case []byte:
		return t
	}
	return nil
}

func parseVersion(v any) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, nil
	case string:
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad version %q", t)
		}
		return n, nil
	}
	return 0, fmt.Errorf("bad version %v (%T)", v, v)
}

// parseScore accepts the forms servers print scores in ("1700000000000",
// "1.7e+12"); every score this package writes is a whole number of ms.
func parseScore(v any) (time.Time, error) {
	switch t := v.(type) {
	case int64:
		return time.UnixMilli(t), nil
	case float64:
		return time.UnixMilli(int64(t)), nil
	case string:
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad score %q", t)
		}
		return time.UnixMilli(int64(f)), nil
	}
	return time.Time{}, fmt.Errorf("bad score %v (%T)", v, v)
}
