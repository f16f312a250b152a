package flow

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// constsByName are the string constants of this package's code (not its
// tests) whose names start with prefix, by name.
func constsByName(t *testing.T, prefix string) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				if vs.Type != nil {
					// Typed: a setting's values (EventsLean), not a label
					// the stream or the metrics carry.
					continue
				}
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					out[n.Name] = v
				}
			}
		}
	}
	return out
}

// TestRequestRejectionCodesComplete: every Reject* code the package
// declares is a request rejection code but the catalog entries' own, each
// once, so a new code is served from 0 as soon as it is declared.
func TestRequestRejectionCodesComplete(t *testing.T) {
	consts := constsByName(t, "Reject")
	if len(consts) < 30 {
		t.Fatalf("found %d Reject* constants; the parse is off", len(consts))
	}
	entries := map[string]bool{RejectSenderEntry: true, RejectTemplateEntry: true}
	codes := RequestRejectionCodes()
	for name, v := range consts {
		if got := slices.Contains(codes, v); got == entries[v] {
			t.Errorf("%s (%q): in RequestRejectionCodes %v, want %v", name, v, got, !entries[v])
		}
	}
	sorted := slices.Sorted(slices.Values(codes))
	if len(slices.Compact(sorted)) != len(codes) {
		t.Errorf("RequestRejectionCodes repeats a code: %v", codes)
	}
}

// TestCatalogWarningCodesComplete: the warning codes are exactly the codes
// checkCatalog can return (the first argument of each reject call in it).
func TestCatalogWarningCodesComplete(t *testing.T) {
	src, err := os.ReadFile("catalog.go")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "catalog.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := constsByName(t, "Reject")
	var found []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "checkCatalog" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "reject" && len(call.Args) > 0 {
					if code, ok := call.Args[0].(*ast.Ident); ok {
						found = append(found, consts[code.Name])
					}
				}
			}
			return true
		})
	}
	found = slices.Compact(slices.Sorted(slices.Values(found)))
	if want := slices.Sorted(slices.Values(CatalogWarningCodes())); !slices.Equal(found, want) || len(found) == 0 {
		t.Errorf("checkCatalog returns %v; CatalogWarningCodes lists %v", found, want)
	}
}

// TestDiscardReasonsComplete: every Discard* reason is listed.
func TestDiscardReasonsComplete(t *testing.T) {
	consts := constsByName(t, "Discard")
	if len(consts) == 0 {
		t.Fatal("no Discard* constants found")
	}
	for name, v := range consts {
		if !slices.Contains(DiscardReasons(), v) {
			t.Errorf("%s (%q) is not in DiscardReasons", name, v)
		}
	}
}

// TestStatusKinds: every kind's name, once (String maps an unknown kind to
// intermediate).
func TestStatusKinds(t *testing.T) {
	var names []string
	for k := range StatusKind(64) {
		if n := k.String(); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if !sameSet(StatusKinds(), names) || len(StatusKinds()) != len(names) {
		t.Errorf("StatusKinds() = %v, the kinds are %v", StatusKinds(), names)
	}
}

// TestCloses: on the default channels, DELIVERED by each of the three,
// READ by the two with read receipts, and the undelivered outcomes by none.
func TestCloses(t *testing.T) {
	got := DefaultChannels().Closes()
	want := [][2]string{
		{OutcomeDelivered, "rcs"}, {OutcomeRead, "rcs"}, {OutcomeDelivered, "sms"},
		{OutcomeDelivered, "whatsapp"}, {OutcomeRead, "whatsapp"},
		{OutcomeFailed, NoChannel}, {OutcomeExpired, NoChannel}, {OutcomeCancelled, NoChannel},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Closes() = %v, want %v", got, want)
	}
	for _, name := range DefaultChannels().Names() {
		if has := slices.Contains(got, [2]string{OutcomeRead, name}); has != DefaultChannels()[name].HasReadReceipts {
			t.Errorf("%s: READ listed %v, but HasReadReceipts is %v", name, has, DefaultChannels()[name].HasReadReceipts)
		}
	}
}
