package schemas

import (
	"embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/pkg/crc64"
)

// Namespace is the Avro namespace of every record of this contract version.
// A breaking change gets a new namespace (fallbackd.v2), not an edit here.
const Namespace = "fallbackd.v1"

// Kafka header names the processor attaches to every record it produces, so
// that a consumer can tell which schema wrote a value without a schema
// registry. The name header holds the record's full name (e.g.
// "fallbackd.v1.ChannelSend"); the fingerprint header holds Fingerprint().
const (
	HeaderSchemaName        = "fallback.schema"
	HeaderSchemaFingerprint = "fallback.schema.fp"
)

// Size limits. Decode refuses larger input before parsing anything, and
// Encode refuses to produce it, so that we never write what we would refuse
// to read. MaxRecordBytes matches Kafka's default max.message.bytes (1 MiB);
// none of our records comes close to it in normal use.
//
// A DeadLetter wraps the original key and value of a record that may itself
// be (almost) MaxRecordBytes long, plus an error text, so it gets more room.
// Whoever produces dead letters must make sure the DLQ topic and the
// producer accept records that big, or truncate the original bytes.
const (
	MaxRecordBytes     = 1 << 20
	MaxDeadLetterBytes = 4 << 20
)

// Decode errors. Every error returned by a Decode wraps exactly one of them
// (test with errors.Is), so callers can count or route them without parsing
// messages.
var (
	// ErrTooLarge: the input is larger than the codec's maximum size.
	ErrTooLarge = errors.New("record too large")
	// ErrTruncated: the input ends before the record does, or claims more
	// items or bytes than it holds.
	ErrTruncated = errors.New("truncated record")
	// ErrTrailingBytes: bytes remain after a complete record. Values carry
	// no framing, so extra bytes mean the writer used another schema.
	ErrTrailingBytes = errors.New("trailing bytes after record")
	// ErrMalformed: anything else that is not a valid value of the schema
	// (bad union branch, negative length, invalid UTF-8, timestamp outside
	// years 1 to 9999, varint overflow, duplicate map key...).
	ErrMalformed = errors.New("malformed record")
)

//go:embed *.avsc
var avscFiles embed.FS

// previousFiles are the earlier versions of the schemas, one file per
// version (previous/<Record>.<n>.avsc), kept so that records written before
// a compatible change still decode (see Codec.DecodeFrom).
//
//go:embed previous/*.avsc
var previousFiles embed.FS

// SchemaFiles returns the embedded .avsc files (one per record, each
// self-contained), e.g. to serve or print them.
func SchemaFiles() fs.FS { return avscFiles }

// Info describes one record schema, whatever its Go type.
type Info interface {
	// Name is the record's full Avro name, e.g. "fallbackd.v1.SendRequest".
	Name() string
	// Fingerprint is the CRC-64-AVRO fingerprint of the schema's Parsing
	// Canonical Form as 16 lowercase hex digits of its 8 little-endian
	// bytes: the same string as fastavro's
	// fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO"), as hex of
	// Java's SchemaNormalization.parsingFingerprint("CRC-64-AVRO", s), and as
	// the 8 bytes of an Avro single-object-encoding header.
	Fingerprint() string
	// Rabin is the same fingerprint as a number (Java's
	// SchemaNormalization.parsingFingerprint64, as unsigned).
	Rabin() uint64
	// Schema is the .avsc text.
	Schema() string
	// Canonical is the schema's Parsing Canonical Form.
	Canonical() string
}

// Codec encodes and decodes one record type as plain Avro binary: no magic
// byte, no schema-registry header, no framing. It is immutable and safe for
// concurrent use.
type Codec[T any] struct {
	name      string
	schema    string
	canonical string
	rabin     uint64
	fp        string
	maxBytes  int
	// shape is the schema compiled for validate (scan.go), which checks
	// every input before hamba reads it and every output hamba writes.
	shape *node
	// api, hamba and mirror read and write T with hamba (mirror.go).
	api    avro.API
	hamba  avro.Schema
	mirror mirror[T]
	// fast, when set, is the hand-written encoder Append uses instead of
	// hamba + validate (fast.go); it writes the same bytes.
	fast fastEncoder[T]
	// fastDecode, when set, is the hand-written decoder Decode uses instead
	// of validate + hamba (fastdecode.go); it returns the same values and
	// refuses the same inputs.
	fastDecode fastDecoder[T]
	// previous are the earlier writer schemas of the record, newest first.
	previous []writerSchema
}

// writerSchema is an earlier version of a record's schema: records written
// with it decode into the current Go type, the fields it lacks taking their
// defaults (null: the Go zero value).
type writerSchema struct {
	fp    string
	shape *node
	// resolved is hamba's resolution of the current schema (the reader)
	// against this one (the writer).
	resolved avro.Schema
}

var _ Info = (*Codec[Step])(nil)

// Name is the record's full Avro name (see Info).
func (c *Codec[T]) Name() string { return c.name }

// Fingerprint is the schema's CRC-64-AVRO fingerprint in hex (see Info); it
// is the value of the HeaderSchemaFingerprint header.
func (c *Codec[T]) Fingerprint() string { return c.fp }

// Rabin is the fingerprint as a number (see Info).
func (c *Codec[T]) Rabin() uint64 { return c.rabin }

// Schema is the .avsc text.
func (c *Codec[T]) Schema() string { return c.schema }

// Canonical is the schema's Parsing Canonical Form.
func (c *Codec[T]) Canonical() string { return c.canonical }

// MaxBytes is the largest encoding this codec writes or reads.
func (c *Codec[T]) MaxBytes() int { return c.maxBytes }

// Encode returns the Avro binary encoding of v.
//
// Go "" is written as null in optional string fields, nil slices, maps and
// pointers as null (or as an empty array or map where the field is not
// optional), and time.Time as UTC milliseconds (sub-millisecond precision is
// truncated). Encode fails on what Decode would refuse: invalid UTF-8,
// timestamps outside years 1 to 9999, an encoding above MaxBytes.
//
// FlowEvent and ChannelSend are written by hand-written
// encoders (fast.go) that write map entries sorted by key, so that equal
// values encode to equal bytes; the other records go through hamba, which
// writes map entries in Go's random map order (as goavro did).
func (c *Codec[T]) Encode(v T) ([]byte, error) {
	return c.Append(nil, v)
}

// Append appends the encoding of v to dst (see Encode). On error dst is
// returned unchanged.
func (c *Codec[T]) Append(dst []byte, v T) ([]byte, error) {
	if c.fast != nil {
		// No validate here: see "No validate after the fast path" in fast.go.
		out, err := c.fast(dst, v, c.maxBytes)
		if err != nil {
			return dst, fmt.Errorf("schemas: encode %s: %w", c.name, err)
		}
		return out, nil
	}
	enc, err := c.mirror.encode(c.api, c.hamba, v)
	if err != nil {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, err)
	}
	// Check what hamba wrote with the reader's rules (it writes invalid
	// UTF-8 as it is given), so that no record we produce is refused by our
	// own Decode (or by fastavro).
	if len(enc) > c.maxBytes {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, errTooLarge(len(enc), c.maxBytes))
	}
	if err := validate(c.shape, enc); err != nil {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, err)
	}
	if dst == nil {
		return enc, nil // Marshal's result is ours: Encode copies nothing
	}
	return append(dst, enc...), nil
}

// Decode decodes one record from b, which must hold exactly one encoded
// record. The result does not alias b. Every error wraps one of ErrTooLarge,
// ErrTruncated, ErrTrailingBytes or ErrMalformed.
//
// Avro binary carries no type information: bytes written with another
// schema usually fail to decode, but not always. Check the
// HeaderSchemaFingerprint header when a record has it.
//
// SendRequest and DeliveryReport, which the processor reads for every
// input record, are read by hand-written decoders (fastdecode.go) that
// return what the reference path (validate, goavro) returns and refuse what
// it refuses; the other records go through validateInput, then hamba.
func (c *Codec[T]) Decode(b []byte) (T, error) {
	if c.fastDecode == nil {
		return c.decodeHamba(writerSchema{fp: c.fp, shape: c.shape, resolved: c.hamba}, b)
	}
	var zero T
	if len(b) > c.maxBytes {
		return zero, fmt.Errorf("schemas: decode %s: %w: %d bytes, max %d", c.name, ErrTooLarge, len(b), c.maxBytes)
	}
	v, err := c.fastDecode(b)
	if err != nil {
		return zero, fmt.Errorf("schemas: decode %s: %w", c.name, err)
	}
	return v, nil
}

// DecodeFrom decodes one record written with the schema whose fingerprint
// (the HeaderSchemaFingerprint header) is fingerprint: the current schema or
// an earlier compatible version, the fields that version lacks taking their
// defaults. With no fingerprint, or one it does not know, it tries the
// current schema, then the earlier ones, newest first, and returns the
// current schema's error when none fits: a record that fits several
// versions reads as the newest. A version that adds fields at the end of
// the record never accepts the bytes of another (every field takes at least
// one byte), so there the only cost of a missing header is that a record
// cut exactly at a version's end reads as that version. SendRequest 3 added
// fields inside Step instead: a request without steps has the same bytes,
// and the same value, in versions 2 and 3, and only hand-crafted bytes with
// steps could read as both with different values. The current schema is
// read by Decode (with its fast decoder, if any), the earlier ones by hamba.
func (c *Codec[T]) DecodeFrom(fingerprint string, b []byte) (T, error) {
	if fingerprint == c.fp || len(c.previous) == 0 {
		return c.Decode(b)
	}
	for _, w := range c.previous {
		if fingerprint == w.fp {
			return c.decodeHamba(w, b)
		}
	}
	v, err := c.Decode(b)
	if err == nil {
		return v, nil
	}
	for _, w := range c.previous {
		if old, oldErr := c.decodeHamba(w, b); oldErr == nil {
			return old, nil
		}
	}
	return v, err
}

// PreviousFingerprints are the fingerprints of the earlier schema versions
// DecodeFrom reads, newest first.
func (c *Codec[T]) PreviousFingerprints() []string {
	out := make([]string, len(c.previous))
	for i, w := range c.previous {
		out[i] = w.fp
	}
	return out
}

// decodeHamba reads b, written with w (the current schema or an earlier
// one), through hamba. validateInput goes first: hamba alone allocates
// from unchecked block counts and accepts over-long varints, truncated
// records, trailing bytes, invalid UTF-8, years outside 1 to 9999 and
// duplicate map keys (TestHambaHostileInputs).
func (c *Codec[T]) decodeHamba(w writerSchema, b []byte) (T, error) {
	var zero T
	op := "decode " + c.name
	if w.fp != c.fp {
		op += " (schema " + w.fp + ")"
	}
	if len(b) > c.maxBytes {
		return zero, fmt.Errorf("schemas: %s: %w: %d bytes, max %d", op, ErrTooLarge, len(b), c.maxBytes)
	}
	if err := validateInput(w.shape, b); err != nil {
		return zero, fmt.Errorf("schemas: %s: %w", op, err)
	}
	v, err := c.mirror.decode(c.api, w.resolved, b)
	if err != nil {
		// Nothing validate passes should end here.
		return zero, fmt.Errorf("schemas: %s: %w: %v", op, ErrMalformed, err)
	}
	return v, nil
}

// Codecs holds one codec per record of the contract. Build it once with New
// and share it: it is immutable and safe for concurrent use.
type Codecs struct {
	SendRequest    *Codec[SendRequest]
	Step           *Codec[Step]
	DeliveryReport *Codec[DeliveryReport]
	ChannelSend    *Codec[ChannelSend]
	FlowEvent      *Codec[FlowEvent]
	FlowSummary    *Codec[FlowSummary]
	StepSummary    *Codec[StepSummary]
	FlowDefinition *Codec[FlowDefinition]
	DeadLetter     *Codec[DeadLetter]
	Sender         *Codec[Sender]
	Template       *Codec[Template]
}

// All returns the codecs as Info, in a fixed order.
func (c *Codecs) All() []Info {
	return []Info{c.SendRequest, c.Step, c.DeliveryReport, c.ChannelSend,
		c.FlowEvent, c.FlowSummary, c.StepSummary, c.FlowDefinition, c.DeadLetter, c.Sender, c.Template}
}

// New parses the embedded schemas and builds the codecs. It only fails if
// the embedded files are broken, which the package's tests rule out.
func New() (*Codecs, error) {
	var errs []error
	cs := &Codecs{
		SendRequest:    build(&errs, "SendRequest", MaxRecordBytes, via(toHSendRequest, fromHSendRequest)),
		Step:           build(&errs, "Step", MaxRecordBytes, via(toHStep, fromHStep)),
		DeliveryReport: build(&errs, "DeliveryReport", MaxRecordBytes, via(toHDeliveryReport, fromHDeliveryReport)),
		ChannelSend:    build(&errs, "ChannelSend", MaxRecordBytes, via(toHChannelSend, fromHChannelSend)),
		FlowEvent:      build(&errs, "FlowEvent", MaxRecordBytes, via(toHFlowEvent, fromHFlowEvent)),
		FlowSummary:    build(&errs, "FlowSummary", MaxRecordBytes, via(toHFlowSummary, fromHFlowSummary)),
		StepSummary:    build(&errs, "StepSummary", MaxRecordBytes, via(toHStepSummary, fromHStepSummary)),
		FlowDefinition: build(&errs, "FlowDefinition", MaxRecordBytes, via(toHFlowDefinition, fromHFlowDefinition)),
		DeadLetter:     build(&errs, "DeadLetter", MaxDeadLetterBytes, via(toHDeadLetter, fromHDeadLetter)),
		Sender:         build(&errs, "Sender", MaxRecordBytes, via(toHSender, fromHSender)),
		Template:       build(&errs, "Template", MaxRecordBytes, via(toHTemplate, fromHTemplate)),
	}
	// The records the processor writes get a hand-written encoder (fast.go).
	withFast(&errs, cs.FlowEvent, "FlowEvent", appendFlowEvent)
	withFast(&errs, cs.ChannelSend, "ChannelSend", appendChannelSend)
	// The records it reads for every input record get a hand-written
	// decoder (fastdecode.go).
	withFastDecoder(&errs, cs.SendRequest, "SendRequest", decodeSendRequest)
	withFastDecoder(&errs, cs.DeliveryReport, "DeliveryReport", decodeDeliveryReport)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cs, nil
}

// build is newCodec collecting its error, so that New reads as one table.
func build[T any](errs *[]error, record string, maxBytes int, m mirror[T]) *Codec[T] {
	c, err := newCodec(record, maxBytes, m)
	if err != nil {
		*errs = append(*errs, err)
	}
	return c
}

func newCodec[T any](record string, maxBytes int, m mirror[T]) (*Codec[T], error) {
	file := record + ".avsc"
	text, err := avscFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("schemas: read %s: %w", file, err)
	}
	v, err := loadVersion(file, text, Namespace+"."+record)
	if err != nil {
		return nil, err
	}
	c := &Codec[T]{
		name:      Namespace + "." + record,
		schema:    string(text),
		canonical: v.canonical,
		rabin:     v.rabin,
		fp:        fingerprintHex(v.rabin),
		maxBytes:  maxBytes,
		shape:     v.shape,
		api:       hambaConfig(maxBytes),
		hamba:     v.hamba,
		mirror:    m,
	}
	if c.previous, err = previousSchemas(record, v.hamba); err != nil {
		return nil, err
	}
	return c, nil
}

// version is one schema text, parsed every way the package uses it.
type version struct {
	hamba     avro.Schema
	canonical string
	rabin     uint64
	shape     *node
}

// loadVersion parses a schema file that must define the record name.
func loadVersion(file string, text []byte, name string) (version, error) {
	h, err := parseHamba(text)
	if err != nil {
		return version{}, fmt.Errorf("schemas: parse %s: %w", file, err)
	}
	if named, ok := h.(avro.NamedSchema); !ok || named.FullName() != name {
		return version{}, fmt.Errorf("schemas: %s does not define %s", file, name)
	}
	canonical, err := canonicalForm(text)
	if err != nil {
		return version{}, fmt.Errorf("schemas: %s: %w", file, err)
	}
	shape, err := compileSchema(text)
	if err != nil {
		return version{}, fmt.Errorf("schemas: compile %s: %w", file, err)
	}
	return version{hamba: h, canonical: canonical, rabin: fingerprintOf(canonical), shape: shape}, nil
}

// IdentifySchema returns the full name and the Fingerprint (see Info) of
// any Avro schema text, for example one a schema registry returned. Two
// texts that differ only in what Parsing Canonical Form drops (docs,
// defaults, whitespace, key order) have the same fingerprint.
func IdentifySchema(schemaJSON string) (name, fingerprint string, err error) {
	var top map[string]any // a named schema is a JSON object
	if err := json.Unmarshal([]byte(schemaJSON), &top); err != nil {
		return "", "", fmt.Errorf("schemas: identify schema: not a named schema: %w", err)
	}
	canonical, err := canonicalForm([]byte(schemaJSON))
	if err != nil {
		return "", "", fmt.Errorf("schemas: identify schema: %w", err)
	}
	rabin := fingerprintOf(canonical)
	if n, ok := top["name"].(string); ok {
		name = fullName(n, top, "")
	}
	return name, fingerprintHex(rabin), nil
}

func fingerprintHex(rabin uint64) string {
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], rabin)
	return hex.EncodeToString(le[:])
}

// previousSchemas loads previous/<record>.<n>.avsc, newest (highest n)
// first, each resolved against current. Each must define the same full name.
func previousSchemas(record string, current avro.Schema) ([]writerSchema, error) {
	files, err := fs.Glob(previousFiles, "previous/"+record+".*.avsc")
	if err != nil {
		return nil, fmt.Errorf("schemas: previous versions of %s: %w", record, err)
	}
	type versioned struct {
		n    int
		file string
	}
	var vs []versioned
	for _, f := range files {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(f, "previous/"+record+"."), ".avsc"))
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: want previous/%s.<n>.avsc", f, record)
		}
		vs = append(vs, versioned{n, f})
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].n > vs[j].n })
	var out []writerSchema
	for _, v := range vs {
		text, err := previousFiles.ReadFile(v.file)
		if err != nil {
			return nil, fmt.Errorf("schemas: read %s: %w", v.file, err)
		}
		old, err := loadVersion(v.file, text, current.(avro.NamedSchema).FullName())
		if err != nil {
			return nil, err
		}
		resolved, err := avro.NewSchemaCompatibility().Resolve(current, old.hamba)
		if err != nil {
			return nil, fmt.Errorf("schemas: resolve %s against %s: %w", v.file, record, err)
		}
		out = append(out, writerSchema{fp: fingerprintHex(old.rabin), shape: old.shape, resolved: resolved})
	}
	return out, nil
}

// fingerprintOf returns the CRC-64-AVRO fingerprint (the Rabin fingerprint
// of the Avro specification) of a schema already in Parsing Canonical Form.
func fingerprintOf(canonical string) uint64 {
	h := crc64.New()
	h.Write([]byte(canonical)) // a hash.Hash never fails
	return h.Sum64()
}
