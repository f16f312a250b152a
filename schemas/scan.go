package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// This file holds a strict, allocation-free validator of Avro binary data
// against a schema. Decode runs it (validateInput) before handing the bytes
// to hamba, and Encode runs it on hamba's output, because neither hamba nor
// goavro (the codec before issue 22, still the tests' reference) is safe on
// hostile input. hamba, with the strictest settings (hambaConfig), returns a
// slice of negative length or writes over runtime memory for an array block
// count of -2^63, allocates 120 MiB for a 31-byte request claiming 2^20
// steps, and accepts truncated records, over-long numbers, trailing bytes,
// invalid UTF-8, years outside 1..9999 and duplicate map keys
// (TestHambaHostileInputs). goavro's gaps, which the validator was written
// for:
//
//   - goavro pre-allocates arrays and maps from the block count it reads
//     (make([]any, 0, count), make(map[string]any, count)), bounded only by
//     goavro.MaxBlockCount, which is math.MaxInt32 by default. A five-byte
//     input claiming 2^31-1 map entries makes it allocate tens of gigabytes
//     before it notices the data is missing. Lowering the package-level
//     goavro.MaxBlockCount would change the behaviour of every other goavro
//     user in the process, so we do not touch it; the validator instead
//     rejects any block count larger than the bytes left (every item of our
//     arrays and maps takes at least one byte, checked when the schema is
//     compiled).
//   - goavro silently wraps over-long varints, accepts trailing bytes (it
//     returns them), and does not check UTF-8. The validator rejects all
//     three, so that what we accept is exactly what Java and fastavro accept:
//     fastavro raises on invalid UTF-8, and a status copied from a bad DLR
//     into an event would otherwise break Python consumers downstream.
//   - timestamps outside years 1..9999 are rejected: Python's datetime cannot
//     hold them, and goavro's own conversion overflows near the int64 ends,
//     so decode(encode(x)) would not be stable.
//   - duplicate map keys: goavro refused them, hamba keeps the last value;
//     validateInput refuses them as goavro did.

type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kFixed
	kArray
	kMap
	kUnion
)

// node is one compiled schema node.
type node struct {
	kind      kind
	name      string  // full name of a named type
	fields    []field // kRecord
	elem      *node   // kArray items, kMap values
	branches  []*node // kUnion
	size      int     // kFixed size, kEnum symbol count
	timestamp bool    // kLong carrying timestamp-millis: range checked
	building  bool    // set while the node is being compiled: detects recursion
}

type field struct {
	name string
	typ  *node
}

// Timestamp range accepted on the wire: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999Z, in Unix milliseconds.
const (
	minTimestampMillis = -62135596800000
	maxTimestampMillis = 253402300799999
)

// compileSchema compiles the JSON schema text into a node tree.
func compileSchema(schemaJSON []byte) (*node, error) {
	var schema any
	if err := json.Unmarshal(schemaJSON, &schema); err != nil {
		return nil, fmt.Errorf("parse schema JSON: %w", err)
	}
	c := compiler{named: map[string]*node{}}
	return c.compile(schema, "")
}

type compiler struct {
	named map[string]*node
}

func (c *compiler) compile(schema any, ns string) (*node, error) {
	switch s := schema.(type) {
	case string:
		if n := primitiveNode(s); n != nil {
			return n, nil
		}
		n, ok := c.named[fullName(s, nil, ns)]
		if !ok {
			return nil, fmt.Errorf("unknown type %q", s)
		}
		if n.building {
			// A recursive schema would make the validator recurse without a
			// bound set by the schema; none of ours is recursive.
			return nil, fmt.Errorf("recursive type %q is not supported", s)
		}
		return n, nil
	case []any:
		n := &node{kind: kUnion}
		for _, b := range s {
			bn, err := c.compile(b, ns)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case map[string]any:
		return c.compileObject(s, ns)
	default:
		return nil, fmt.Errorf("unexpected schema value %T", schema)
	}
}

func primitiveNode(name string) *node {
	switch name {
	case "null":
		return &node{kind: kNull}
	case "boolean":
		return &node{kind: kBoolean}
	case "int":
		return &node{kind: kInt}
	case "long":
		return &node{kind: kLong}
	case "float":
		return &node{kind: kFloat}
	case "double":
		return &node{kind: kDouble}
	case "bytes":
		return &node{kind: kBytes}
	case "string":
		return &node{kind: kString}
	}
	return nil
}

func (c *compiler) compileObject(m map[string]any, ns string) (*node, error) {
	switch t := m["type"].(type) {
	case map[string]any, []any:
		return c.compile(t, ns)
	case string:
		if n := primitiveNode(t); n != nil {
			n.timestamp = t == "long" && m["logicalType"] == "timestamp-millis"
			return n, nil
		}
		switch t {
		case "record", "error", "enum", "fixed":
			name, _ := m["name"].(string)
			full := fullName(name, m, ns)
			if _, dup := c.named[full]; dup {
				return nil, fmt.Errorf("type %q defined twice", full)
			}
			n := &node{name: full, building: true}
			c.named[full] = n
			defer func() { n.building = false }()
			switch t {
			case "record", "error":
				n.kind = kRecord
				fields, _ := m["fields"].([]any)
				for _, f := range fields {
					fm, _ := f.(map[string]any)
					fname, _ := fm["name"].(string)
					ft, err := c.compile(fm["type"], namespaceOf(full))
					if err != nil {
						return nil, fmt.Errorf("%s.%s: %w", full, fname, err)
					}
					n.fields = append(n.fields, field{name: fname, typ: ft})
				}
			case "enum":
				n.kind = kEnum
				symbols, _ := m["symbols"].([]any)
				n.size = len(symbols)
			case "fixed":
				n.kind = kFixed
				size, _ := m["size"].(float64)
				n.size = int(size)
			}
			return n, nil
		case "array", "map":
			key := "items"
			n := &node{kind: kArray}
			if t == "map" {
				key, n.kind = "values", kMap
			}
			elem, err := c.compile(m[key], ns)
			if err != nil {
				return nil, err
			}
			// The block-count bound below (count <= bytes left) is only sound
			// when every item takes at least one byte. A map entry always
			// does (its key's length); an array of null would not.
			if n.kind == kArray && minSize(elem) == 0 {
				return nil, fmt.Errorf("array of zero-size items is not supported")
			}
			n.elem = elem
			return n, nil
		default:
			return c.compile(t, ns)
		}
	default:
		return nil, fmt.Errorf("object schema without a type")
	}
}

// minSize is the smallest number of bytes a value of n takes.
func minSize(n *node) int {
	switch n.kind {
	case kNull:
		return 0
	case kFloat:
		return 4
	case kDouble:
		return 8
	case kFixed:
		return n.size
	case kRecord:
		total := 0
		for _, f := range n.fields {
			total += minSize(f.typ)
		}
		return total
	default: // every other kind starts with at least one varint or byte
		return 1
	}
}

// scanner walks one binary value. It never allocates on the success path
// (but for maps of more than smallKeys entries when dups is set); error
// paths wrap the failing field's name as they unwind.
type scanner struct {
	b   []byte
	pos int
	// dups makes a repeated key in a map an error (errDuplicateKey).
	dups bool
}

// validate checks that b holds exactly one value of n.
func validate(n *node, b []byte) error { return scan(n, b, false) }

func scan(n *node, b []byte, dups bool) error {
	s := scanner{b: b, dups: dups}
	if err := s.value(n); err != nil {
		return err
	}
	if s.pos != len(b) {
		return fmt.Errorf("%w: %d bytes after the end of the record", ErrTrailingBytes, len(b)-s.pos)
	}
	return nil
}

// errDuplicateKey is the error of a key repeated in one map.
var errDuplicateKey = fmt.Errorf("%w: duplicate map key", ErrMalformed)

// validateInput is validate plus a refusal of duplicate map keys, which
// hamba accepts (the last value wins) and goavro, the reference, refuses.
// A duplicate key counts only when nothing else is wrong with the input, as
// with goavro after validate and in the hand-written decoders (fastdecode.go):
// the first structural error, then trailing bytes, then the first duplicate.
// So a scan that stops at a duplicate is redone without the check, which
// costs a second scan only for input that is refused anyway.
func validateInput(n *node, b []byte) error {
	err := scan(n, b, true)
	if errors.Is(err, errDuplicateKey) {
		if other := validate(n, b); other != nil {
			return other
		}
	}
	return err
}

// smallKeys is how many keys of a map keySet compares one by one before it
// moves them to a Go map: our maps are small, a hostile one may not be.
const smallKeys = 8

// keySet holds the keys of one map, as slices of the input.
type keySet struct {
	small [smallKeys][]byte
	n     int
	big   map[string]struct{}
}

// add adds k and reports whether it was there already.
func (ks *keySet) add(k []byte) bool {
	if ks.big == nil {
		for _, o := range ks.small[:ks.n] {
			if bytes.Equal(o, k) {
				return true
			}
		}
		if ks.n < smallKeys {
			ks.small[ks.n] = k
			ks.n++
			return false
		}
		ks.big = make(map[string]struct{}, 4*smallKeys)
		for _, o := range ks.small {
			ks.big[string(o)] = struct{}{}
		}
	}
	if _, ok := ks.big[string(k)]; ok {
		return true
	}
	ks.big[string(k)] = struct{}{}
	return false
}

func (s *scanner) left() int { return len(s.b) - s.pos }

// varint reads a zig-zag varint of at most maxBytes bytes (5 for int, 10 for
// long) and rejects encodings whose value does not fit.
func (s *scanner) varint(maxBytes int) (int64, error) {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		if s.pos >= len(s.b) {
			return 0, fmt.Errorf("%w: inside a varint", ErrTruncated)
		}
		c := s.b[s.pos]
		s.pos++
		if i == maxBytes-1 {
			// The last byte may only carry the bits left: 4 for an int
			// (5*7 = 35 > 32), 1 for a long (10*7 = 70 > 64).
			limit := byte(0x0f)
			if maxBytes == 10 {
				limit = 0x01
			}
			if c > limit {
				return 0, fmt.Errorf("%w: varint overflows", ErrMalformed)
			}
		}
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c&0x80 == 0 {
			return int64(v>>1) ^ -int64(v&1), nil
		}
	}
	return 0, fmt.Errorf("%w: varint overflows", ErrMalformed)
}

func (s *scanner) long() (int64, error) { return s.varint(10) }

// length reads a byte or block length and checks it against what is left.
func (s *scanner) length() (int, error) {
	n, err := s.long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: negative length %d", ErrMalformed, n)
	}
	if n > int64(s.left()) {
		return 0, fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrTruncated, n, s.left())
	}
	return int(n), nil
}

// blockCount reads an array or map block header and bounds the count by the
// bytes left (every item takes at least one byte).
func (s *scanner) blockCount() (int64, error) {
	count, err := s.long()
	if err != nil {
		return 0, err
	}
	if count < 0 {
		// A negative count is followed by the block's size in bytes.
		if count == -count { // math.MinInt64
			return 0, fmt.Errorf("%w: block count %d", ErrMalformed, count)
		}
		count = -count
		if _, err := s.length(); err != nil {
			return 0, fmt.Errorf("block size: %w", err)
		}
	}
	if count > int64(s.left()) {
		return 0, fmt.Errorf("%w: block count %d exceeds the %d bytes left", ErrTruncated, count, s.left())
	}
	return count, nil
}

func (s *scanner) value(n *node) error {
	switch n.kind {
	case kNull:
		return nil
	case kBoolean:
		if s.left() < 1 {
			return fmt.Errorf("%w: boolean", ErrTruncated)
		}
		if c := s.b[s.pos]; c > 1 {
			return fmt.Errorf("%w: boolean byte %d", ErrMalformed, c)
		}
		s.pos++
		return nil
	case kInt:
		_, err := s.varint(5)
		return err
	case kLong:
		v, err := s.long()
		if err != nil {
			return err
		}
		if n.timestamp && (v < minTimestampMillis || v > maxTimestampMillis) {
			return fmt.Errorf("%w: timestamp %d ms is outside years 1 to 9999", ErrMalformed, v)
		}
		return nil
	case kFloat, kDouble, kFixed:
		size := 4
		if n.kind == kDouble {
			size = 8
		} else if n.kind == kFixed {
			size = n.size
		}
		if s.left() < size {
			return fmt.Errorf("%w: %d-byte value", ErrTruncated, size)
		}
		s.pos += size
		return nil
	case kBytes, kString:
		return s.bytes(n.kind == kString)
	case kEnum:
		i, err := s.varint(5)
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(n.size) {
			return fmt.Errorf("%w: enum index %d", ErrMalformed, i)
		}
		return nil
	case kRecord:
		for _, f := range n.fields {
			if err := s.value(f.typ); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return nil
	case kUnion:
		i, err := s.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return fmt.Errorf("%w: union branch %d of %d", ErrMalformed, i, len(n.branches))
		}
		return s.value(n.branches[i])
	case kArray, kMap:
		var keys keySet
		for item := 0; ; {
			count, err := s.blockCount()
			if err != nil {
				return err
			}
			if count == 0 {
				return nil
			}
			for ; count > 0; count-- {
				if n.kind == kMap {
					k, err := s.str()
					if err != nil {
						return fmt.Errorf("[%d] key: %w", item, err)
					}
					if s.dups && keys.add(k) {
						return fmt.Errorf("[%d] key: %w", item, errDuplicateKey)
					}
				}
				if err := s.value(n.elem); err != nil {
					return fmt.Errorf("[%d]: %w", item, err)
				}
				item++
			}
		}
	default:
		return fmt.Errorf("%w: unknown schema kind %d", ErrMalformed, n.kind)
	}
}

// bytes skips a length-prefixed byte string, checking UTF-8 for strings.
func (s *scanner) bytes(isString bool) error {
	n, err := s.length()
	if err != nil {
		return err
	}
	if isString && !utf8.Valid(s.b[s.pos:s.pos+n]) {
		return fmt.Errorf("%w: string is not valid UTF-8", ErrMalformed)
	}
	s.pos += n
	return nil
}

// str skips a string and returns its bytes (a map key), with bytes' checks.
func (s *scanner) str() ([]byte, error) {
	n, err := s.length()
	if err != nil {
		return nil, err
	}
	b := s.b[s.pos : s.pos+n]
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: string is not valid UTF-8", ErrMalformed)
	}
	s.pos += n
	return b, nil
}
