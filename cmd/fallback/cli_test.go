package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds the command once per test run, with a release version and
// commit set through -ldflags -X.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fallback-cli")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "fallback")
		out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7 -X main.commit=abc1234", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return builtBin
}

// runBin runs the binary with a clean FALLBACK_* environment plus env and
// returns its stdout, stderr and exit status.
func runBin(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FALLBACK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// flagsListed are the flag names a -h output lists.
func flagsListed(help string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "  -") {
			out[strings.Fields(line)[0][1:]] = true
		}
	}
	return out
}

// TestHelpListsOnlyTheCommandsFlags: each command's -h exits 0 and lists
// its own flags and the shared ones it uses, and no others.
func TestHelpListsOnlyTheCommandsFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		want   []string
		unwant []string
	}{
		{[]string{"run"}, []string{"brokers", "redis", "partitions", "claim-lease", "log-level", "print-config", "kafka-sasl-user", "redis-tls-ca", "catalog", "topic-senders", "topic-templates"}, []string{"reveal", "flows", "changed-by"}},
		{[]string{"demo"}, []string{"flows", "speed", "json"}, []string{"brokers", "redis", "partitions", "log-level"}},
		{[]string{"topics", "create"}, []string{"brokers", "partitions", "replication", "topic-dlr", "kafka-tls"}, []string{"redis", "claim-lease", "group", "log-level", "clock-speed", "create-topics"}},
		{[]string{"send"}, []string{"brokers", "topic-requests", "file", "clock-speed"}, []string{"redis", "topic-dlr", "partitions", "claim-lease", "group"}},
		{[]string{"flow"}, []string{"redis", "redis-prefix", "reveal", "redis-tls-ca"}, []string{"brokers", "kafka-tls", "partitions", "topic-requests", "claim-lease"}},
		{[]string{"providers"}, []string{"brokers", "topic-dlr", "topic-sends-prefix", "clock-speed", "log-level"}, []string{"redis", "partitions", "claim-lease", "group"}},
		{[]string{"load"}, []string{"brokers", "topic-requests", "topic-flows", "flows", "rate", "id-prefix"}, []string{"redis", "partitions", "claim-lease", "group", "log-level"}},
		{[]string{"flows", "put"}, []string{"brokers", "topic-flows", "topic-senders", "topic-templates", "changed-by", "publish"}, []string{"redis", "catalog", "partitions", "log-level"}},
		{[]string{"flows", "publish"}, []string{"brokers", "topic-flows", "topic-senders", "changed-by"}, []string{"redis", "publish", "catalog"}},
		{[]string{"flows", "unpublish"}, []string{"brokers", "topic-flows", "changed-by"}, []string{"redis", "publish"}},
		{[]string{"flows", "list"}, []string{"brokers", "topic-flows"}, []string{"changed-by", "publish", "topic-events", "topic-sends-prefix"}},
		{[]string{"senders", "put"}, []string{"brokers", "topic-senders", "channel", "id", "label", "status", "changed-by"}, []string{"redis", "json", "topic-dlr", "topic-requests"}},
		{[]string{"senders", "list"}, []string{"brokers", "topic-senders", "channel", "json"}, []string{"changed-by", "id", "status"}},
		{[]string{"senders", "disable"}, []string{"brokers", "topic-senders", "channel", "changed-by"}, []string{"id", "status", "json"}},
		{[]string{"templates", "put"}, []string{"brokers", "topic-templates", "changed-by"}, []string{"channel", "json", "params"}},
		{[]string{"templates", "list"}, []string{"brokers", "topic-templates", "channel", "json"}, []string{"changed-by", "params"}},
		{[]string{"templates", "preview"}, []string{"brokers", "topic-templates", "channel", "params", "param", "flow", "step"}, []string{"changed-by", "json"}},
	} {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, tc.args...), h)
			stdout, stderr, code := runBin(t, nil, args...)
			if code != 0 {
				t.Errorf("%v: exit %d, want 0\n%s", args, code, stderr)
			}
			help := stdout + stderr
			if !strings.Contains(help, "usage: fallback "+strings.Join(tc.args, " ")) {
				t.Errorf("%v: no usage line:\n%s", args, help)
			}
			listed := flagsListed(help)
			for _, f := range tc.want {
				if !listed[f] {
					t.Errorf("%v: -%s not listed", args, f)
				}
			}
			for _, f := range tc.unwant {
				if listed[f] {
					t.Errorf("%v: -%s listed, but the command does not use it", args, f)
				}
			}
		}
	}
}

// TestExitCodes: help exits 0, a wrong command line 2 with the usage, a
// refused setting 1.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		code int
		want string // in stdout+stderr
	}{
		{[]string{"--help"}, nil, 0, "Commands:"},
		{[]string{"-h"}, nil, 0, "Commands:"},
		{[]string{"help"}, nil, 0, "Commands:"},
		{nil, nil, 2, "Commands:"},
		{[]string{"nope"}, nil, 2, `unknown command "nope"`},
		{[]string{"topics"}, nil, 2, "the only subcommand is 'create'"},
		{[]string{"senders", "-h"}, nil, 0, "usage: fallback senders put"},
		{[]string{"templates", "--help"}, nil, 0, "usage: fallback templates put"},
		{[]string{"flows", "-h"}, nil, 0, "fallback flows publish [flags] ID"},
		{[]string{"senders"}, nil, 2, "senders: give disable, list or put"},
		{[]string{"templates", "get"}, nil, 2, `templates: unknown subcommand "get": give list, preview or put`},
		{[]string{"senders", "put", "--channel", "sms", "--id", "A", "--changed-by", "x", "--brokers", "127.0.0.1:1"}, nil, 1, "fallback: invalid sender: sender_invalid: id: "},
		{[]string{"run", "--catalog", "strict"}, nil, 1, `--catalog (FALLBACK_CATALOG): catalog mode "strict" is not one of auto, off, warn, enforce`},
		{[]string{"run", "--no-such-flag"}, nil, 2, "flag provided but not defined: -no-such-flag"},
		{[]string{"flow", "--brokers", "x"}, nil, 2, "flag provided but not defined: -brokers"},
		{[]string{"demo", "--flows", "many"}, nil, 2, "invalid value"},
		{[]string{"run"}, []string{"FALLBACK_CREATE_TOPICS=yes"}, 1, `FALLBACK_CREATE_TOPICS="yes" (--create-topics): not a boolean`},
		{[]string{"run", "--log-level", "verbose"}, nil, 1, "--log-level (FALLBACK_LOG_LEVEL): \"verbose\" is not a log level: use one of debug, info, warn, error"},
		{[]string{"topics", "create", "--partitions", "0"}, nil, 1, "--partitions (FALLBACK_PARTITIONS)"},
	} {
		stdout, stderr, code := runBin(t, tc.env, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%v %v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tc.env, tc.args, code, tc.code, tc.want, stdout, stderr)
		}
	}
}

// TestVersion: --version and `version` print the -ldflags -X version and
// commit; without them, the build information's.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		stdout, stderr, code := runBin(t, nil, args...)
		if code != 0 || !strings.HasPrefix(stdout, "fallback v9.8.7 (commit abc1234) go") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	// In a test binary: no -X, no VCS stamp.
	if v := versionString(); !strings.HasPrefix(v, "fallback ") || !strings.Contains(v, "(commit ") {
		t.Errorf("versionString() = %q", v)
	}
	version, commit = "v1.0.0", "deadbeef"
	defer func() { version, commit = "", "" }()
	if v := versionString(); !strings.HasPrefix(v, "fallback v1.0.0 (commit deadbeef) go") {
		t.Errorf("with the -X variables: %q", v)
	}
}

// TestPrintConfig: --print-config prints every setting after flags,
// variables and defaults, hides the secrets, and exits 0 without
// connecting (the brokers and Redis are unreachable here).
func TestPrintConfig(t *testing.T) {
	stdout, stderr, code := runBin(t,
		[]string{"FALLBACK_KAFKA_SASL_PASSWORD=kafka-s3cret", "FALLBACK_PARTITIONS=7", "FALLBACK_GROUP=from-env"},
		"run", "--print-config", "--brokers", "127.0.0.1:1", "--group", "from-flag",
		"--redis", "redis://user:redis-s3cret@127.0.0.1:1/0?addr=127.0.0.1:2&password=query-s3cret")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, secret := range []string{"kafka-s3cret", "redis-s3cret", "query-s3cret"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("secret %q printed:\n%s", secret, stdout)
		}
	}
	value := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(f[0], "--") {
			value[f[0]] = f[1]
			if f[2] != "FALLBACK_"+strings.ToUpper(strings.ReplaceAll(f[0][2:], "-", "_")) && f[0] != "--redis" {
				t.Errorf("%s: env column %s", f[0], f[2])
			}
		}
	}
	for flag, want := range map[string]string{
		"--brokers": "127.0.0.1:1", "--group": "from-flag", "--partitions": "7", "--claim-lease": "10s",
		"--kafka-sasl-password": "(hidden)", "--instance-id": `""`, "--topic-requests": "fallback.requests",
	} {
		if value[flag] != want {
			t.Errorf("%s = %q, want %q\n%s", flag, value[flag], want, stdout)
		}
	}
	if !strings.Contains(value["--redis"], "user:xxxxx@127.0.0.1:1") {
		t.Errorf("--redis = %q, want the password masked", value["--redis"])
	}
	if len(value) < 35 {
		t.Errorf("only %d settings printed:\n%s", len(value), stdout)
	}
	// A bad setting is still refused.
	if _, stderr, code := runBin(t, []string{"FALLBACK_PARTITIONS=x"}, "run", "--print-config"); code != 1 || !strings.Contains(stderr, "FALLBACK_PARTITIONS") {
		t.Errorf("bad variable with --print-config: exit %d, %s", code, stderr)
	}
}

// TestDispatchRefusesBadSettings: every command checks its shared settings
// before it connects, naming the variable and the flag.
func TestDispatchRefusesBadSettings(t *testing.T) {
	t.Setenv("FALLBACK_CLOCK_SPEED", "fast")
	for _, args := range [][]string{{"run"}, {"send", "{}"}, {"providers"}, {"load"}} {
		err := dispatch(context.Background(), args)
		if err == nil || !strings.Contains(err.Error(), `FALLBACK_CLOCK_SPEED="fast" (--clock-speed): not a number`) {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	// flow does not use the clock: the variable is not read.
	err := dispatch(context.Background(), []string{"flow", "--redis", "", "r1"})
	if err == nil || strings.Contains(err.Error(), "clock") {
		t.Errorf("flow: err = %v, want the missing Redis", err)
	}
}
