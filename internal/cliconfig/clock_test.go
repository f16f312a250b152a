package cliconfig

import (
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/clock"
)

// TestClockOffsetParses: --clock-offset and FALLBACK_CLOCK_OFFSET take a
// Go duration, negative too, up to an hour either way; anything else
// stops start-up naming the flag and the variable.
func TestClockOffsetParses(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want time.Duration
	}{
		{"default", nil, nil, 0},
		{"flag", nil, []string{"--clock-offset", "2s"}, 2 * time.Second},
		{"negative flag", nil, []string{"--clock-offset=-200ms"}, -200 * time.Millisecond},
		{"env", map[string]string{"FALLBACK_CLOCK_OFFSET": "-2s"}, nil, -2 * time.Second},
		{"an hour", nil, []string{"--clock-offset", "1h"}, time.Hour},
		{"an hour behind", nil, []string{"--clock-offset=-1h"}, -time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseWith(t, GroupAll, tc.env, tc.args...)
			if err != nil || c.ClockOffset != tc.want {
				t.Errorf("offset %s, err %v; want %s", c.ClockOffset, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"not a duration", map[string]string{"FALLBACK_CLOCK_OFFSET": "2"}, nil, `FALLBACK_CLOCK_OFFSET="2" (--clock-offset): not a duration`},
		{"too far ahead", nil, []string{"--clock-offset", "61m"}, "--clock-offset (FALLBACK_CLOCK_OFFSET): must be within 1h0m0s either way, got 1h1m0s"},
		{"too far behind", map[string]string{"FALLBACK_CLOCK_OFFSET": "-24h"}, nil, "--clock-offset (FALLBACK_CLOCK_OFFSET): must be within 1h0m0s either way, got -24h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWith(t, GroupAll, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestClockWithOffset: the offset shifts what the clock reads, over the
// wall clock and over the sped-up one (in flow time), but not how a
// record's timestamp maps to it; without an offset the clock is the plain
// one.
func TestClockWithOffset(t *testing.T) {
	c, err := parseWith(t, GroupAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if clk, err := c.Clock(); err != nil || clk != (clock.Real{}) {
		t.Errorf("no offset, speed 1: %T, %v; want clock.Real", clk, err)
	}

	const epoch = 1_700_000_000_000
	stamp := time.UnixMilli(epoch + 5_000)
	scaled := clock.NewScaledAt(time.UnixMilli(epoch), 10)
	for _, tc := range []struct {
		name string
		args []string
		base clock.Wall
		off  time.Duration
	}{
		{"wall clock behind", []string{"--clock-offset=-200ms"}, clock.Real{}, -200 * time.Millisecond},
		{"sped up, ahead", []string{"--clock-speed", "10", "--clock-epoch", "1700000000000", "--clock-offset", "2s"}, scaled, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseWith(t, GroupAll, nil, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			clk, err := c.Clock()
			if err != nil {
				t.Fatal(err)
			}
			wc, ok := clk.(clock.Wall)
			if !ok {
				t.Fatalf("%T cannot map record timestamps (FromWall)", clk)
			}
			before := tc.base.Now().Add(tc.off)
			now := clk.Now()
			after := tc.base.Now().Add(tc.off)
			if now.Before(before) || now.After(after) {
				t.Errorf("Now %s, want within [%s, %s]", now, before, after)
			}
			if got, want := wc.FromWall(stamp), tc.base.FromWall(stamp); !got.Equal(want) {
				t.Errorf("FromWall %s, want %s: a record's timestamp is not shifted", got, want)
			}
		})
	}
}

// TestRetentionRunsInFlowTime: Redis expires keys on its own clock, so a
// sped-up test world gives it its retentions divided by the speed; at
// speed 1 they are what the flags say.
func TestRetentionRunsInFlowTime(t *testing.T) {
	for _, tc := range []struct {
		args                []string
		tombstone, indexTTL time.Duration
	}{
		{nil, time.Hour + 2*time.Second, 2*time.Hour + time.Hour + 2*time.Second},
		{[]string{"--clock-speed", "10", "--clock-epoch", "1700000000000"}, (time.Hour + 2*time.Second) / 10, (3*time.Hour + 2*time.Second) / 10},
		{[]string{"--tombstone-retention", "24h", "--clock-speed", "4", "--clock-epoch", "1700000000000"}, 6 * time.Hour, (2*time.Hour + 24*time.Hour) / 4},
	} {
		c, err := parseWith(t, GroupProcessor|GroupClock, nil, append([]string{"--deadline-grace", "2s"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.storeConfig(nil).TombstoneTTL; got != tc.tombstone {
			t.Errorf("%v: tombstone TTL %s, want %s", tc.args, got, tc.tombstone)
		}
		if got := c.ProviderIndexTTL(); got != tc.indexTTL {
			t.Errorf("%v: provider index TTL %s, want %s", tc.args, got, tc.indexTTL)
		}
	}
}
