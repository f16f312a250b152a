package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set for release builds:
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/fallback
//
// Left empty, they come from the build information Go embeds: the module
// version (v1.2.0 from `go install ...@v1.2.0`, "(devel)" from a checkout)
// and the VCS revision of a `go build` in a git checkout (vcs.revision,
// vcs.modified).
var (
	version string
	commit  string
)

// versionString is `fallback version`: "fallback VERSION (commit REV[,
// modified]) GOVERSION".
func versionString() string {
	v, rev, modified := version, commit, false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true" && commit == ""
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown"
	}
	if modified {
		rev += ", modified"
	}
	return fmt.Sprintf("fallback %s (commit %s) %s", v, rev, runtime.Version())
}
