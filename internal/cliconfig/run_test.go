package cliconfig

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/observe"
	"github.com/fallbackd/fallback/processor"
)

// TestRunFlagsDefaults: `fallback run`'s flag set holds the shared
// settings of GroupRun and --config, and its own flags with their
// documented defaults.
func TestRunFlagsDefaults(t *testing.T) {
	for _, name := range []string{"http-addr", "shutdown-timeout", "print-config"} {
		t.Setenv(clients.EnvOf("--"+name), "") // restored after the test
		os.Unsetenv(clients.EnvOf("--" + name))
	}
	fs, r := NewRunFlags()
	if fs.Name() != "run" || fs.ErrorHandling() != flag.ContinueOnError {
		t.Errorf("flag set %q, error handling %v; want run, ContinueOnError", fs.Name(), fs.ErrorHandling())
	}
	for _, name := range []string{"brokers", "redis", "group", "instance-id", "catalog", "schema-registry", "clock-speed", "log-level", ConfigFlag} {
		if fs.Lookup(name) == nil {
			t.Errorf("no shared flag --%s", name)
		}
	}
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if r.PrintConfig || r.HTTPAddr != observe.DefaultAddr || r.ShutdownTimeout != processor.DefaultShutdownTimeout {
		t.Errorf("defaults: print-config %v, http-addr %q, shutdown-timeout %s; want false, %q, %s",
			r.PrintConfig, r.HTTPAddr, r.ShutdownTimeout, observe.DefaultAddr, processor.DefaultShutdownTimeout)
	}
	if err := r.Check(); err != nil {
		t.Errorf("Check with the defaults: %v", err)
	}
}

// TestRunFlagsFromEnv: --http-addr and --shutdown-timeout take their
// FALLBACK_* variables, which win over the --config file and lose to the
// command line; --print-config reads none; a variable that does not parse
// is reported by Check naming it and the flag.
func TestRunFlagsFromEnv(t *testing.T) {
	t.Setenv("FALLBACK_HTTP_ADDR", ":1234")
	t.Setenv("FALLBACK_SHUTDOWN_TIMEOUT", "7s")
	t.Setenv("FALLBACK_PRINT_CONFIG", "true")
	file := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(file, []byte("http-addr: \":9999\"\nshutdown-timeout: 9s\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	fs, r := NewRunFlags()
	if err := fs.Parse([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfig(fs); err != nil {
		t.Fatal(err)
	}
	if r.HTTPAddr != ":1234" || r.ShutdownTimeout != 7*time.Second || r.PrintConfig {
		t.Errorf("from the variables: http-addr %q, shutdown-timeout %s, print-config %v; want :1234, 7s, false",
			r.HTTPAddr, r.ShutdownTimeout, r.PrintConfig)
	}

	fs, r = NewRunFlags()
	if err := fs.Parse([]string{"--http-addr", "", "--shutdown-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	if r.HTTPAddr != "" || r.ShutdownTimeout != 3*time.Second {
		t.Errorf("flags over the variables: http-addr %q, shutdown-timeout %s; want empty, 3s", r.HTTPAddr, r.ShutdownTimeout)
	}

	t.Setenv("FALLBACK_SHUTDOWN_TIMEOUT", "soon")
	fs, r = NewRunFlags()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := r.Check()
	if err == nil || !strings.Contains(err.Error(), "FALLBACK_SHUTDOWN_TIMEOUT") || !strings.Contains(err.Error(), "--shutdown-timeout") {
		t.Errorf("FALLBACK_SHUTDOWN_TIMEOUT=soon: Check says %v, want an error naming the variable and the flag", err)
	}
}

// TestReadEnvUndefinedFlag: ReadEnv given a name the flag set does not
// define panics naming it, so a misspelt or renamed flag cannot leave its
// variable silently unread (NewRunFlags would panic in every test that
// builds run's flags).
func TestReadEnvUndefinedFlag(t *testing.T) {
	fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("own", "", "a command's own flag (env FALLBACK_OWN)")
	c := &Common{}
	c.ReadEnv(fs, "own") // defined: no panic

	defer func() {
		p := recover()
		msg, _ := p.(string)
		if !strings.Contains(msg, "--http-adr") || !strings.Contains(msg, "cmd") {
			t.Errorf("ReadEnv of an undefined flag: recovered %v, want a panic naming --http-adr and the flag set", p)
		}
	}()
	c.ReadEnv(fs, "own", "http-adr")
}
