package cliconfig

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/statestore"
)

// parseWith registers groups on a new flag set and parses args with the
// variables env set.
func parseWith(t *testing.T, groups Group, env map[string]string, args ...string) (*Common, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c := &Common{}
	c.RegisterGroups(fs, groups)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c, c.Check()
}

// TestCheckRefusesBadValues: a FALLBACK_* variable that does not parse and
// an impossible value both stop start-up, naming the flag and the variable.
func TestCheckRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bool env", map[string]string{"FALLBACK_CREATE_TOPICS": "yes"}, nil, `FALLBACK_CREATE_TOPICS="yes" (--create-topics): not a boolean`},
		{"int env", map[string]string{"FALLBACK_PARTITIONS": "twelve"}, nil, `FALLBACK_PARTITIONS="twelve" (--partitions): not an integer`},
		{"duration env", map[string]string{"FALLBACK_CLAIM_LEASE": "10"}, nil, `FALLBACK_CLAIM_LEASE="10" (--claim-lease): not a duration`},
		{"float env", map[string]string{"FALLBACK_CLOCK_SPEED": "fast"}, nil, `FALLBACK_CLOCK_SPEED="fast" (--clock-speed): not a number`},
		{"int64 env", map[string]string{"FALLBACK_CLOCK_EPOCH": "1.5"}, nil, `FALLBACK_CLOCK_EPOCH="1.5" (--clock-epoch): not an integer`},
		{"security bool env", map[string]string{"FALLBACK_KAFKA_TLS": "on"}, nil, `FALLBACK_KAFKA_TLS="on" (--kafka-tls): not a boolean`},
		{"log level flag", nil, []string{"--log-level", "verbose"}, `--log-level (FALLBACK_LOG_LEVEL): "verbose" is not a log level: use one of debug, info, warn, error`},
		{"log level env", map[string]string{"FALLBACK_LOG_LEVEL": "trace"}, nil, `--log-level (FALLBACK_LOG_LEVEL): "trace" is not a log level`},
		{"log format flag", nil, []string{"--log-format", "logfmt"}, `--log-format (FALLBACK_LOG_FORMAT): "logfmt" is not a log format: use one of text, json`},
		{"log format env", map[string]string{"FALLBACK_LOG_FORMAT": "xml"}, nil, `--log-format (FALLBACK_LOG_FORMAT): "xml" is not a log format`},
		{"partitions 0", nil, []string{"--partitions", "0"}, "--partitions (FALLBACK_PARTITIONS): created topics need at least 1 partition, got 0"},
		{"partitions negative", nil, []string{"--partitions", "-3"}, "--partitions (FALLBACK_PARTITIONS)"},
		{"replication -2", nil, []string{"--replication", "-2"}, "--replication (FALLBACK_REPLICATION): the replication factor is -1 (the broker's default) or at least 1, got -2"},
		{"replication 0", nil, []string{"--replication", "0"}, "--replication (FALLBACK_REPLICATION)"},
		{"replication too big", nil, []string{"--replication", "40000"}, "--replication (FALLBACK_REPLICATION)"},
		{"claim lease 0", nil, []string{"--claim-lease", "0s"}, "--claim-lease (FALLBACK_CLAIM_LEASE): must be above 0, got 0s"},
		{"claim lease negative", nil, []string{"--claim-lease", "-5s"}, "--claim-lease (FALLBACK_CLAIM_LEASE): must be above 0, got -5s"},
		{"batch fill above 1s", nil, []string{"--batch-fill", "2s"}, "--batch-fill (FALLBACK_BATCH_FILL): must be between 0 and 1s, got 2s"},
		{"batch fill negative", nil, []string{"--batch-fill", "-1ms"}, "--batch-fill (FALLBACK_BATCH_FILL): must be between 0 and 1s, got -1ms"},
		{"max deadline hold", nil, []string{"--max-deadline-hold", "-1s"}, "--max-deadline-hold (FALLBACK_MAX_DEADLINE_HOLD): must not be negative"},
		{"tombstone negative", nil, []string{"--tombstone-retention", "-1h"}, "--tombstone-retention (FALLBACK_TOMBSTONE_RETENTION): must not be negative"},
		{"clock speed 0", nil, []string{"--clock-speed", "0"}, "--clock-speed (FALLBACK_CLOCK_SPEED): must be a finite number above 0"},
		{"clock speed NaN", map[string]string{"FALLBACK_CLOCK_SPEED": "NaN"}, nil, "--clock-speed (FALLBACK_CLOCK_SPEED): must be a finite number above 0"},
		{"clock speed without epoch", nil, []string{"--clock-speed", "10"}, "--clock-epoch (FALLBACK_CLOCK_EPOCH): --clock-speed 10 needs"},
		{"empty group", nil, []string{"--group", ""}, "--group (FALLBACK_GROUP): must not be empty"},
		{"empty topic", map[string]string{"FALLBACK_TOPIC_DLR": ""}, nil, "--topic-dlr (FALLBACK_TOPIC_DLR): must not be empty"},
		{"empty prefix", nil, []string{"--redis-prefix", ""}, "--redis-prefix (FALLBACK_REDIS_PREFIX): must not be empty"},
		{"shards negative", nil, []string{"--redis-shards", "-1"}, "--redis-shards (FALLBACK_REDIS_SHARDS): must be from 1 to 1024, or 0 for the default, got -1"},
		{"shards too many", map[string]string{"FALLBACK_REDIS_SHARDS": "5000"}, nil, "--redis-shards (FALLBACK_REDIS_SHARDS): must be from 1 to 1024"},
		{"request age", nil, []string{"--max-request-age", "0s"}, "--max-request-age (FALLBACK_MAX_REQUEST_AGE) must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWith(t, GroupAll, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCheckAccepts: the defaults, good values from flags and variables,
// an empty numeric variable (unset), and a flag that overrides a bad
// variable's neighbour all pass.
func TestCheckAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"defaults", nil, nil},
		{"env", map[string]string{"FALLBACK_CREATE_TOPICS": "false", "FALLBACK_PARTITIONS": "3", "FALLBACK_LOG_LEVEL": "DEBUG", "FALLBACK_CLAIM_LEASE": "2s"}, nil},
		{"empty numeric env is unset", map[string]string{"FALLBACK_PARTITIONS": "", "FALLBACK_KAFKA_TLS": " "}, nil},
		{"no topics created", nil, []string{"--create-topics=false", "--partitions", "0"}},
		{"replication 3", nil, []string{"--replication", "3"}},
		{"clock", nil, []string{"--clock-speed", "10", "--clock-epoch", "1700000000000"}},
		{"hold 0 is the default", nil, []string{"--max-deadline-hold", "0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseWith(t, GroupAll, tc.env, tc.args...); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
	c, err := parseWith(t, GroupAll, map[string]string{"FALLBACK_PARTITIONS": "3"}, "--partitions", "5")
	if err != nil || c.Partitions != 5 {
		t.Errorf("the flag must win over the variable: partitions %d, err %v", c.Partitions, err)
	}
}

// TestGroupsRegisterOnlyTheirFlags: a command registers only the groups it
// uses; the others keep their defaults, and their variables are not read.
func TestGroupsRegisterOnlyTheirFlags(t *testing.T) {
	t.Setenv("FALLBACK_PARTITIONS", "not a number") // not registered: not read
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c := &Common{}
	c.RegisterGroups(fs, GroupKafka|GroupRequestsTopic|GroupClock)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	got := strings.Join(names, " ")
	for _, want := range []string{"brokers", "kafka-tls", "kafka-sasl-mechanism", "topic-requests", "clock-speed"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("flag %s not registered: %s", want, got)
		}
	}
	for _, unwanted := range []string{"redis", "partitions", "group", "topic-dlr", "log-level", "claim-lease", "redis-tls-ca"} {
		if strings.Contains(" "+got+" ", " "+unwanted+" ") {
			t.Errorf("flag %s registered: %s", unwanted, got)
		}
	}
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Errorf("check: %v", err)
	}
	if c.ClockSpeed != 1 || c.Names.DLR != "fallback.dlr" || c.Partitions != 12 || c.Group != "fallback" {
		t.Errorf("unregistered settings lost their defaults: %+v", c)
	}
}

// TestShardsDefaultFollowsTheRedisKind: --redis-shards 0 is 16 on a single
// server and ClusterShards on a cluster; a set count wins on both.
func TestShardsDefaultFollowsTheRedisKind(t *testing.T) {
	single := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer single.Close()
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	for _, tc := range []struct {
		args   []string
		client redis.UniversalClient
		want   int
	}{
		{nil, single, statestore.DefaultShards},
		{nil, cluster, ClusterShards},
		{[]string{"--redis-shards", "8"}, single, 8},
		{[]string{"--redis-shards", "8"}, cluster, 8},
	} {
		c, err := parseWith(t, GroupAll, nil, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Shards(tc.client); got != tc.want {
			t.Errorf("%v on %T: %d shards, want %d", tc.args, tc.client, got, tc.want)
		}
	}
}

// TestClosedDetailRetention: the detail window reaches the state store in
// Redis's time; one as long as the tombstone retention (a short
// --max-request-age) keeps closed flows whole instead of refusing to start.
func TestClosedDetailRetention(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 10 * time.Minute},
		{[]string{"--closed-detail-retention", "0"}, 0},
		{[]string{"--closed-detail-retention", "2m", "--clock-speed", "4", "--clock-epoch", "1700000000000"}, 30 * time.Second},
		{[]string{"--max-request-age", "5m"}, 0}, // tombstone 5m0.25s: whole
	} {
		c, err := parseWith(t, GroupAll, nil, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := c.storeConfig(nil).ClosedDetailTTL; got != tc.want {
			t.Errorf("%v: detail TTL %s, want %s", tc.args, got, tc.want)
		}
	}
	if _, err := parseWith(t, GroupAll, nil, "--closed-detail-retention", "-1m"); err == nil || !strings.Contains(err.Error(), "--closed-detail-retention") {
		t.Fatalf("a negative detail window: %v", err)
	}
}

// TestAutoDelayFlags: the defaults, and an error naming the flag.
func TestAutoDelayFlags(t *testing.T) {
	c, err := parseWith(t, GroupAll, nil)
	if err != nil || c.AutoDelayWindow != time.Hour || c.AutoDelayMinSamples != 50 {
		t.Fatalf("defaults %s %d, %v", c.AutoDelayWindow, c.AutoDelayMinSamples, err)
	}
	if c, err := parseWith(t, GroupAll, nil, "--auto-delay-window", "15m", "--auto-delay-min-samples", "200"); err != nil ||
		c.AutoDelayWindow != 15*time.Minute || c.AutoDelayMinSamples != 200 {
		t.Fatalf("set: %v", err)
	}
	for flag, val := range map[string]string{"--auto-delay-window": "30s", "--auto-delay-min-samples": "0"} {
		if _, err := parseWith(t, GroupAll, nil, flag, val); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s %s: %v", flag, val, err)
		}
	}
}
