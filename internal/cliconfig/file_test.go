package cliconfig

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseFile registers every shared setting and --config on a new flag set,
// sets env, writes yaml to a file, parses args, applies the file and
// checks the settings, as the commands do.
func parseFile(t *testing.T, yaml string, env map[string]string, args ...string) (*Common, *flag.FlagSet, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fallback.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c := &Common{}
	c.RegisterGroups(fs, GroupAll)
	RegisterConfig(fs)
	own := fs.String("http-addr", ":9464", "(env FALLBACK_HTTP_ADDR)")
	c.ReadEnv(fs, "http-addr")
	if err := fs.Parse(append([]string{"--config", path}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfig(fs); err != nil {
		return c, fs, path, err
	}
	_ = own
	return c, fs, path, c.Check()
}

// TestConfigFilePrecedence: flag, then variable, then file, then default,
// for each kind of value, shared or a command's own.
func TestConfigFilePrecedence(t *testing.T) {
	const file = `
brokers: file:9092
group: from-file
claim-lease: 3s
create-topics: false
partitions: 4
clock-speed: 2
clock-epoch: 1700000000000
http-addr: ":1"
kafka-sasl-password: file-secret
`
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		flag string
		want string
	}{
		{"file over default", nil, nil, "group", "from-file"},
		{"file duration", nil, nil, "claim-lease", "3s"},
		{"file bool", nil, nil, "create-topics", "false"},
		{"file int", nil, nil, "partitions", "4"},
		{"file float", nil, nil, "clock-speed", "2"},
		{"file int64", nil, nil, "clock-epoch", "1700000000000"},
		{"file command's own flag", nil, nil, "http-addr", ":1"},
		{"default when not in file", nil, nil, "topic-dlr", "fallback.dlr"},
		{"variable over file", map[string]string{"FALLBACK_GROUP": "from-env"}, nil, "group", "from-env"},
		{"variable over file, own flag", map[string]string{"FALLBACK_HTTP_ADDR": ":2"}, nil, "http-addr", ":2"},
		{"variable over file, bool", map[string]string{"FALLBACK_CREATE_TOPICS": "true"}, nil, "create-topics", "true"},
		{"empty numeric variable is unset", map[string]string{"FALLBACK_PARTITIONS": " "}, nil, "partitions", "4"},
		{"flag over file", nil, []string{"--claim-lease", "7s"}, "claim-lease", "7s"},
		{"flag over variable and file", map[string]string{"FALLBACK_GROUP": "from-env"}, []string{"--group", "from-flag"}, "group", "from-flag"},
		{"flag over file, own flag", map[string]string{"FALLBACK_HTTP_ADDR": ":2"}, []string{"--http-addr", ":3"}, "http-addr", ":3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fs, _, err := parseFile(t, file, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.Lookup(tc.flag).Value.String(); got != tc.want {
				t.Errorf("--%s = %q, want %q", tc.flag, got, tc.want)
			}
		})
	}
	c, _, _, err := parseFile(t, file, nil)
	if err != nil || c.Brokers != "file:9092" || c.ClaimLease != 3*time.Second || c.CreateTopics || c.Kafka.SASLPassword != "file-secret" {
		t.Errorf("settings from the file: %+v, err %v", c, err)
	}
}

// TestConfigFileErrors: an unknown key, a value that does not parse (even
// one a flag overrides), a list, a repeated key and an impossible value
// stop start-up, naming the file, the key and the flag.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		args []string
		want string // after "config file PATH: "; "" for a Check error
	}{
		{"unknown key", "brokers: a:1\nbrokerz: b:1\n", nil, nil, `line 2: key "brokerz" (--brokerz): no such flag for fallback run`},
		{"bad bool", "create-topics: yes\n", nil, nil, `line 1: key "create-topics" (--create-topics): "yes" is not a boolean (true or false)`},
		{"bad int", "partitions: twelve\n", nil, nil, `line 1: key "partitions" (--partitions): "twelve" is not an integer`},
		{"bad duration", "claim-lease: 10\n", nil, nil, `line 1: key "claim-lease" (--claim-lease): "10" is not a duration`},
		{"bad float", "clock-speed: fast\n", nil, nil, `line 1: key "clock-speed" (--clock-speed): "fast" is not a number`},
		{"empty duration", "claim-lease:\n", nil, nil, `line 1: key "claim-lease" (--claim-lease): "" is not a duration`},
		{"bad value under a flag", "claim-lease: soon\n", nil, []string{"--claim-lease", "1s"}, `line 1: key "claim-lease" (--claim-lease): "soon" is not a duration`},
		{"bad value under a variable", "partitions: many\n", map[string]string{"FALLBACK_PARTITIONS": "3"}, nil, `line 1: key "partitions" (--partitions): "many" is not an integer`},
		{"list", "brokers: [a:1, b:1]\n", nil, nil, `line 1: key "brokers" (--brokers): want a single value`},
		{"twice", "group: a\ngroup: b\n", nil, nil, `line 2: key "group" (--group): given twice (first at line 1)`},
		{"config in config", "config: other.yaml\n", nil, nil, `line 1: key "config" (--config): a configuration file cannot name another`},
		{"not a mapping", "- brokers\n", nil, nil, "line 1: want a mapping"},
		{"not YAML", "brokers: [\n", nil, nil, "yaml:"},
		{"impossible value", "partitions: 0\n", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, path, err := parseFile(t, tc.yaml, tc.env, tc.args...)
			want := "config file " + path + ": " + tc.want
			if tc.want == "" {
				want = "--partitions (FALLBACK_PARTITIONS): created topics need at least 1 partition, got 0"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant %q", err, want)
			}
		})
	}
	// A missing file names the file and the flag.
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	RegisterConfig(fs)
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if err := fs.Parse([]string{"--config", missing}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfig(fs); err == nil || !strings.Contains(err.Error(), "--config (FALLBACK_CONFIG): open "+missing) {
		t.Errorf("missing file: %v", err)
	}
}

// TestConfigFileFromVariable: FALLBACK_CONFIG names the file; an empty or
// comment-only file sets nothing.
func TestConfigFileFromVariable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("# settings\ngroup: g1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ConfigEnv, path)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c := &Common{}
	c.RegisterGroups(fs, GroupAll)
	RegisterConfig(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfig(fs); err != nil || c.Group != "g1" {
		t.Errorf("group %q, err %v", c.Group, err)
	}
	for _, body := range []string{"", "# nothing\n", "---\n"} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ApplyFile(fs, path); err != nil {
			t.Errorf("%q: %v", body, err)
		}
	}
}
