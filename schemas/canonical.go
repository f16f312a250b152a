package schemas

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// This file computes the Parsing Canonical Form (PCF) of a schema, as the
// Avro specification defines it ("Parsing Canonical Form for Schemas"), and
// from it the CRC-64-AVRO (Rabin) fingerprint.
//
// Why not goavro's Codec.CanonicalSchema: goavro keeps a primitive that
// carries a logical type as an object ({"type":"long"} for a
// timestamp-millis), where the specification's [PRIMITIVES] rule (and Java's
// SchemaNormalization, and fastavro) reduce it to "long". Every schema here
// has timestamp-millis fields, so goavro's Rabin would differ from the
// fingerprint a Java or Python consumer computes from the same .avsc, and a
// fingerprint header checked across languages would never match. hamba's
// Schema.String() keeps the logical type too. The hash is hamba's crc64
// (see fingerprintOf); TestCanonicalForm pins it.

// primitives are the Avro primitive type names.
var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// canonicalForm returns the PCF of the JSON schema text.
func canonicalForm(schemaJSON []byte) (string, error) {
	var schema any
	if err := json.Unmarshal(schemaJSON, &schema); err != nil {
		return "", fmt.Errorf("parse schema JSON: %w", err)
	}
	var b strings.Builder
	if err := writeCanonical(&b, schema, ""); err != nil {
		return "", err
	}
	return b.String(), nil
}

// fullName applies the Avro name resolution rules: a dotted name is already
// full; otherwise the explicit namespace, else the enclosing one, qualifies
// it.
func fullName(name string, m map[string]any, enclosing string) string {
	if strings.Contains(name, ".") {
		return name
	}
	ns := enclosing
	if explicit, ok := m["namespace"].(string); ok {
		ns = explicit
	}
	if ns == "" {
		return name
	}
	return ns + "." + name
}

// namespaceOf returns the namespace part of a full name.
func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func writeCanonical(b *strings.Builder, schema any, ns string) error {
	switch s := schema.(type) {
	case string:
		// [PRIMITIVES] and [FULLNAMES]: a primitive stays as is, a reference
		// to a named type is replaced by its full name.
		if primitives[s] {
			b.WriteString(strconv.Quote(s))
			return nil
		}
		b.WriteString(strconv.Quote(fullName(s, nil, ns)))
		return nil
	case []any: // a union
		b.WriteByte('[')
		for i, branch := range s {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, branch, ns); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case map[string]any:
		return writeCanonicalObject(b, s, ns)
	default:
		return fmt.Errorf("canonical form: unexpected schema value %T", schema)
	}
}

// writeCanonicalObject writes an object schema, keeping only the attributes
// that matter for parsing ([STRIP]) in the specification's order ([ORDER]:
// name, type, fields, symbols, items, values, size).
func writeCanonicalObject(b *strings.Builder, m map[string]any, ns string) error {
	switch t := m["type"].(type) {
	case map[string]any, []any:
		// {"type": {...}} is the same schema as its inner value.
		return writeCanonical(b, t, ns)
	case string:
		switch {
		case primitives[t]:
			// A primitive with attributes (e.g. a logicalType) reduces to its
			// simple form.
			b.WriteString(strconv.Quote(t))
			return nil
		case t == "record" || t == "error" || t == "enum" || t == "fixed":
			name, _ := m["name"].(string)
			if name == "" {
				return fmt.Errorf("canonical form: %s without a name", t)
			}
			full := fullName(name, m, ns)
			fmt.Fprintf(b, `{"name":%s,"type":%s`, strconv.Quote(full), strconv.Quote(t))
			switch t {
			case "record", "error":
				fields, _ := m["fields"].([]any)
				b.WriteString(`,"fields":[`)
				for i, f := range fields {
					fm, ok := f.(map[string]any)
					if !ok {
						return fmt.Errorf("canonical form: %s: field %d is not an object", full, i)
					}
					fname, _ := fm["name"].(string)
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(b, `{"name":%s,"type":`, strconv.Quote(fname))
					// Fields resolve names in the record's own namespace.
					if err := writeCanonical(b, fm["type"], namespaceOf(full)); err != nil {
						return fmt.Errorf("%s.%s: %w", full, fname, err)
					}
					b.WriteByte('}')
				}
				b.WriteByte(']')
			case "enum":
				symbols, _ := m["symbols"].([]any)
				b.WriteString(`,"symbols":[`)
				for i, sym := range symbols {
					if i > 0 {
						b.WriteByte(',')
					}
					str, _ := sym.(string)
					b.WriteString(strconv.Quote(str))
				}
				b.WriteByte(']')
			case "fixed":
				size, ok := m["size"].(float64)
				if !ok || size < 0 || size != float64(int64(size)) {
					return fmt.Errorf("canonical form: fixed %s: bad size %v", full, m["size"])
				}
				// [INTEGERS]: no leading zeros, no exponent.
				fmt.Fprintf(b, `,"size":%d`, int64(size))
			}
			b.WriteByte('}')
			return nil
		case t == "array":
			b.WriteString(`{"type":"array","items":`)
			if err := writeCanonical(b, m["items"], ns); err != nil {
				return err
			}
			b.WriteByte('}')
			return nil
		case t == "map":
			b.WriteString(`{"type":"map","values":`)
			if err := writeCanonical(b, m["values"], ns); err != nil {
				return err
			}
			b.WriteByte('}')
			return nil
		default:
			// {"type": "SomeNamedType"}: a reference.
			return writeCanonical(b, t, ns)
		}
	default:
		return fmt.Errorf("canonical form: object schema without a type")
	}
}
