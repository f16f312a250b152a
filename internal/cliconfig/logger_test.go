package cliconfig

import (
	"context"
	"log/slog"
	"testing"
)

// TestLoggerFormatAndLevel: --log-format json makes a JSON handler, text
// (or nothing) a text one, each at --log-level.
func TestLoggerFormatAndLevel(t *testing.T) {
	for _, tc := range []struct {
		format, level string
		json          bool
		debug, warn   bool
	}{
		{"", "", false, false, true},
		{"text", "debug", false, true, true},
		{"json", "warn", true, false, true},
		{"JSON", "error", true, false, false},
	} {
		c := &Common{LogFormat: tc.format, LogLevel: tc.level}
		h := c.Logger().Handler()
		if _, isJSON := h.(*slog.JSONHandler); isJSON != tc.json {
			t.Errorf("format %q: handler %T", tc.format, h)
		}
		ctx := context.Background()
		if got := h.Enabled(ctx, slog.LevelDebug); got != tc.debug {
			t.Errorf("level %q: debug enabled = %v", tc.level, got)
		}
		if got := h.Enabled(ctx, slog.LevelWarn); got != tc.warn {
			t.Errorf("level %q: warn enabled = %v", tc.level, got)
		}
	}
}
