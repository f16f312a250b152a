//go:build race

package schemas

// The race detector's instrumentation changes allocation counts.
func init() { raceEnabled = true }
