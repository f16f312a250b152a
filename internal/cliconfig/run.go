package cliconfig

import (
	"flag"

	"github.com/fallbackd/fallback/internal/observe"
	"github.com/fallbackd/fallback/processor"
)

// Run is the settings of `fallback run`: the shared ones of GroupRun
// (with --shutdown-timeout in Common.ShutdownTimeout) and its own. They
// live here rather than in cmd/fallback so that tests outside package main
// (deploy's manifest tests) build the very flag set run parses instead of
// reading its source.
type Run struct {
	*Common
	PrintConfig bool   // --print-config
	HTTPAddr    string // --http-addr; empty: no endpoints
}

// NewRunFlags is the flag set of `fallback run`: every shared setting of
// GroupRun and --config, then run's own flags, those with a FALLBACK_*
// variable already set from it (ReadEnv). The caller adds the usage line
// and parses.
func NewRunFlags() (*flag.FlagSet, *Run) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	r := &Run{Common: &Common{}}
	r.RegisterGroups(fs, GroupRun)
	RegisterConfig(fs)
	fs.BoolVar(&r.PrintConfig, "print-config", false, "print the effective configuration (flags, FALLBACK_* variables, --config file, defaults; secrets hidden) and exit without connecting")
	fs.StringVar(&r.HTTPAddr, "http-addr", observe.DefaultAddr, "address of the /metrics, /healthz and /readyz endpoints; empty disables them (env FALLBACK_HTTP_ADDR)")
	fs.DurationVar(&r.ShutdownTimeout, "shutdown-timeout", processor.DefaultShutdownTimeout, "on SIGTERM or SIGINT: how long to finish the batch in hand and the deliveries in flight, commit and leave the group; past it the process exits 1 naming what was still running; above 0 (env FALLBACK_SHUTDOWN_TIMEOUT)")
	// --print-config is a request of the command line, not a setting: it
	// reads no variable.
	r.ReadEnv(fs, "http-addr", "shutdown-timeout")
	return fs, r
}
