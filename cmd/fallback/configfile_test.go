package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFile: `--config` (or FALLBACK_CONFIG) feeds every command;
// --print-config shows the file's values under the flags and variables,
// secrets hidden; a key or value the file gets wrong stops start-up with
// exit status 1, naming the file, the key and the flag.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", `# fallback run
brokers: file:9092
redis: redis://user:file-s3cret@127.0.0.1:1/0
group: from-file
claim-lease: 3s
create-topics: false
partitions: 5
http-addr: ":19464"
kafka-sasl-password: kafka-file-s3cret
`)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", []string{"FALLBACK_GROUP=from-env"}, []string{"--config", good, "--partitions", "9"}},
		{"variable", []string{"FALLBACK_CONFIG=" + good, "FALLBACK_GROUP=from-env"}, []string{"--partitions", "9"}},
	} {
		stdout, stderr, code := runBin(t, tc.env, append([]string{"run", "--print-config"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, stderr)
		}
		for _, secret := range []string{"file-s3cret"} {
			if strings.Contains(stdout+stderr, secret) {
				t.Errorf("%s: secret printed:\n%s", tc.name, stdout)
			}
		}
		value := map[string]string{}
		for _, line := range strings.Split(stdout, "\n") {
			if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(f[0], "--") {
				value[f[0]] = f[1]
			}
		}
		for flag, want := range map[string]string{
			"--brokers": "file:9092", "--group": "from-env", "--claim-lease": "3s", "--create-topics": "false",
			"--partitions": "9", "--http-addr": ":19464", "--kafka-sasl-password": "(hidden)", "--topic-dlr": "fallback.dlr",
			"--redis": "redis://user:xxxxx@127.0.0.1:1/0",
		} {
			if value[flag] != want {
				t.Errorf("%s: %s = %q, want %q\n%s", tc.name, flag, value[flag], want, stdout)
			}
		}
	}

	// Every command takes --config, and refuses a key it has no flag for.
	shared := write("shared.yaml", "brokers: 127.0.0.1:1\nredis: redis://127.0.0.1:1\n")
	_, stderr, code := runBin(t, nil, "send", "--config", shared, "{}")
	if code != 1 || !strings.Contains(stderr, "config file "+shared+`: line 2: key "redis" (--redis): no such flag for fallback send`) {
		t.Errorf("send with a redis key: exit %d, %s", code, stderr)
	}
	demo := write("demo.yaml", "flows: lots\n")
	_, stderr, code = runBin(t, nil, "demo", "--config", demo)
	if code != 1 || !strings.Contains(stderr, "config file "+demo+`: line 1: key "flows" (--flows): "lots" is not an integer`) {
		t.Errorf("demo with a bad value: exit %d, %s", code, stderr)
	}
	for _, tc := range []struct {
		body, want string
	}{
		{"brokerz: x:1\n", `line 1: key "brokerz" (--brokerz): no such flag for fallback run`},
		{"create-topics: yes\n", `line 1: key "create-topics" (--create-topics): "yes" is not a boolean`},
		{"claim-lease: -5s\n", "--claim-lease (FALLBACK_CLAIM_LEASE): must be above 0, got -5s"},
	} {
		path := write("bad.yaml", tc.body)
		_, stderr, code := runBin(t, nil, "run", "--print-config", "--config", path)
		if code != 1 || !strings.Contains(stderr, tc.want) || (!strings.HasPrefix(tc.want, "--") && !strings.Contains(stderr, "config file "+path)) {
			t.Errorf("%q: exit %d, %s", tc.body, code, stderr)
		}
	}
}
