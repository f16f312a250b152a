package flow

import (
	"encoding/json"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/schemas"
)

// The .avsc docs are the contract Python and Java consumers read. The lists
// of values they give ("..., one of: A, B, C.") must be exactly what this
// package emits.

// docList returns the values a doc lists after "one of: ", up to the next
// ". " or the end.
func docList(t *testing.T, where, doc string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "one of: ")
	if !ok {
		t.Fatalf("%s: doc %q lists no values (\"one of: ...\")", where, doc)
	}
	if i := strings.Index(rest, ". "); i >= 0 {
		rest = rest[:i]
	}
	rest = strings.TrimSuffix(rest, ".")
	var out []string
	for _, v := range strings.Split(strings.ReplaceAll(rest, " or ", ", "), ",") {
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

// fieldDocs returns the docs of every field of every record named record
// (the record's own and its inline copies) in file.
func fieldDocs(t *testing.T, file, record, field string) []string {
	t.Helper()
	text, err := fs.ReadFile(schemas.SchemaFiles(), file)
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(text, &schema); err != nil {
		t.Fatal(err)
	}
	var docs []string
	var walk func(any)
	walk = func(s any) {
		switch s := s.(type) {
		case []any:
			for _, e := range s {
				walk(e)
			}
		case map[string]any:
			if s["type"] == "record" && s["name"] == record {
				for _, f := range s["fields"].([]any) {
					if f := f.(map[string]any); f["name"] == field {
						doc, _ := f["doc"].(string)
						docs = append(docs, doc)
					}
				}
			}
			for _, k := range []string{"type", "items", "values", "fields"} {
				walk(s[k])
			}
		}
	}
	walk(schema)
	if len(docs) == 0 {
		t.Fatalf("%s: no field %s.%s", file, record, field)
	}
	return docs
}

// stringConsts returns the string constants of this package's source files
// whose names start with prefix (constsByName, labels_test.go).
func stringConsts(t *testing.T, prefix string) []string {
	t.Helper()
	out := slices.Collect(maps.Values(constsByName(t, prefix)))
	if len(out) == 0 {
		t.Fatalf("no %s* string constants", prefix)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func checkDoc(t *testing.T, file, record, field string, want []string) {
	t.Helper()
	for _, doc := range fieldDocs(t, file, record, field) {
		if got := docList(t, file+" "+record+"."+field, doc); !sameSet(got, want) {
			t.Errorf("%s %s.%s doc lists %v; the code emits %v", file, record, field, got, want)
		}
	}
}

func TestSchemaDocsListWhatTheCodeEmits(t *testing.T) {
	var kinds []string
	for k := range StatusKind(64) { // String maps every unknown kind to intermediate
		if s := k.String(); !slices.Contains(kinds, s) {
			kinds = append(kinds, s)
		}
	}
	for _, c := range []struct {
		file, record, field string
		want                []string
	}{
		{"FlowEvent.avsc", "FlowEvent", "type", stringConsts(t, "Event")},
		{"FlowEvent.avsc", "FlowEvent", "status_kind", kinds},
		{"FlowEvent.avsc", "FlowSummary", "outcome", stringConsts(t, "Outcome")},
		{"FlowSummary.avsc", "FlowSummary", "outcome", stringConsts(t, "Outcome")},
	} {
		checkDoc(t, c.file, c.record, c.field, c.want)
	}
}
