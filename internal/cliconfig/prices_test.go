package cliconfig

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPricesSetting: --prices is run's alone, FALLBACK_PRICES sets it, and
// Check reads the file, refusing a bad one with an error naming the flag,
// its variable, the file's line and field.
func TestPricesSetting(t *testing.T) {
	var all Common
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	all.Register(fs)
	if fs.Lookup("prices") != nil {
		t.Fatal("GroupAll registers --prices")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(good, []byte("channel,prefix,price,currency\nsms,+49,0.0785,EUR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("channel,prefix,price,currency\nsms,+49,0.07.85,EUR\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var none Common
	fs = flag.NewFlagSet("run", flag.ContinueOnError)
	none.RegisterGroups(fs, GroupRun)
	if tab, err := none.PriceTable(); err != nil || tab != nil || none.Prices != "" {
		t.Fatalf("default: %v %v %q", tab, err, none.Prices)
	}

	t.Setenv("FALLBACK_PRICES", good)
	var c Common
	fs = flag.NewFlagSet("run", flag.ContinueOnError)
	c.RegisterGroups(fs, GroupPrices)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if tab, err := c.PriceTable(); err != nil || tab.Len() != 1 {
		t.Fatalf("FALLBACK_PRICES: %v entries, %v", tab.Len(), err)
	}

	if err := fs.Parse([]string{"--prices", bad}); err != nil {
		t.Fatal(err)
	}
	err := c.Check()
	for _, want := range []string{"--prices (FALLBACK_PRICES)", "bad.csv line 2: price", `"0.07.85"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("bad file: err = %v, want it to contain %q", err, want)
		}
	}
}
