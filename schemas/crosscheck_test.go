package schemas

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCrossLanguageFastavro checks the contract against another Avro
// implementation: testdata/crosscheck.py parses every .avsc alone with
// fastavro, compares canonical forms and fingerprints, decodes every sample
// the Go codecs wrote, and re-encodes it, also with every earlier schema
// version of its record (previous/). Here we then compare fastavro's view of
// each record field by field with goavro's, decode fastavro's encoding back
// to the original Go value, and read its earlier-version encodings with
// DecodeFrom: the value must be what fastavro's schema resolution gives
// (the fields that version lacks at their defaults).
func TestCrossLanguageFastavro(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	if err := exec.Command("python3", "-c", "import fastavro").Run(); err != nil {
		t.Skip("fastavro not installed: pip install fastavro")
	}
	cs := testCodecs(t)
	dir := t.TempDir()

	type entry struct {
		Name        string   `json:"name"`
		Avsc        string   `json:"avsc"`
		Fingerprint string   `json:"fingerprint"`
		Canonical   string   `json:"canonical"`
		Records     []string `json:"records"`
	}
	var manifest struct {
		Schemas []*entry `json:"schemas"`
	}
	byName := map[string]*entry{}
	for _, info := range cs.All() {
		e := &entry{Name: info.Name(), Avsc: info.Name()[len(Namespace)+1:] + ".avsc",
			Fingerprint: info.Fingerprint(), Canonical: info.Canonical()}
		byName[info.Name()] = e
		manifest.Schemas = append(manifest.Schemas, e)
	}
	written := map[string]sample{}
	for _, s := range samples() {
		b, err := s.encode(cs)
		if err != nil {
			t.Fatalf("%s: %v", s.label(), err)
		}
		file := s.label() + ".bin"
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		e := byName[s.info(cs).Name()]
		e.Records = append(e.Records, file)
		written[file] = s
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", filepath.Join("testdata", "crosscheck.py"), ".", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))

	for file, s := range written {
		ours, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		// fastavro's decoded fields == goavro's decoded fields.
		native, _, err := s.info(cs).(goavroAccess).goavro().NativeFromBinary(ours)
		if err != nil {
			t.Fatalf("%s: goavro: %v", file, err)
		}
		want, err := json.Marshal(plainNative(native))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, file+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if g, w := jsonValue(t, got), jsonValue(t, want); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: fastavro and goavro disagree\nfastavro %s\n  goavro %s", file, got, want)
		}
		// fastavro's encoding decodes to the original Go value.
		theirs, err := os.ReadFile(filepath.Join(dir, file+".py.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.decodeEqual(cs, theirs); err != nil {
			t.Errorf("%s: decoding fastavro's encoding: %v", file, err)
		}
	}

	resolved := 0
	for file, s := range written {
		record := strings.TrimPrefix(s.info(cs).Name(), Namespace+".")
		versions, err := fs.Glob(previousFiles, "previous/"+record+".*.avsc")
		if err != nil {
			t.Fatal(err)
		}
		for _, version := range versions {
			text, err := fs.ReadFile(previousFiles, version)
			if err != nil {
				t.Fatal(err)
			}
			_, fp, err := IdentifySchema(string(text))
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(dir, file+".prev."+strings.TrimSuffix(path.Base(version), ".avsc"))
			old, err := os.ReadFile(base + ".bin")
			if err != nil {
				t.Fatalf("crosscheck.py wrote no %s record: %v", version, err)
			}
			// Go's value in the current schema, as JSON, against
			// fastavro's resolution.
			cur, err := s.reencodeFrom(cs, fp, old)
			if err != nil {
				t.Fatalf("%s written with %s: DecodeFrom: %v", file, version, err)
			}
			native, _, err := s.info(cs).(goavroAccess).goavro().NativeFromBinary(cur)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(plainNative(native))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if g, w := jsonValue(t, got), jsonValue(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("%s written with %s: fastavro resolves it to\n%s\nGo's DecodeFrom to\n%s", file, version, got, want)
			}
			resolved++
		}
	}
	if resolved == 0 {
		t.Error("no record was read with an earlier schema version")
	}
}

// goavroAccess lets the test reach a codec's goavro codec whatever its T.
type goavroAccess interface{ goavro() goavroNative }

type goavroNative interface {
	NativeFromBinary([]byte) (any, []byte, error)
}

func (c *Codec[T]) goavro() goavroNative { return c.avroRef() }

var unionBranches = map[string]bool{branchString: true, branchInt: true, branchLong: true, branchBytes: true,
	branchArray: true, branchTimestamp: true, branchSummary: true, branchDelayAuto: true}

// plainNative turns goavro's native form into the JSON crosscheck.py writes:
// union wrappers removed, timestamps as epoch milliseconds, bytes as
// {"$bytes": hex}. (No sample has a map whose only key is a union branch
// name, so unwrapping one-key maps is unambiguous here.)
func plainNative(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, inner := range x {
				if unionBranches[k] {
					return plainNative(inner)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainNative(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainNative(e)
		}
		return out
	case time.Time:
		return x.UnixMilli()
	case []byte:
		return map[string]any{"$bytes": hex.EncodeToString(x)}
	default:
		return x
	}
}

// jsonValue decodes JSON keeping numbers exact (int64 extremes).
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}
