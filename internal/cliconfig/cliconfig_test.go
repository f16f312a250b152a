package cliconfig

import (
	"flag"
	"testing"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/processor/flow"
)

func TestSecurityFlagsFromEnv(t *testing.T) {
	for k, v := range map[string]string{
		"FALLBACK_KAFKA_TLS":                "true",
		"FALLBACK_KAFKA_TLS_CA":             "/ca.pem",
		"FALLBACK_KAFKA_TLS_CERT":           "/cert.pem",
		"FALLBACK_KAFKA_TLS_KEY":            "/key.pem",
		"FALLBACK_KAFKA_TLS_SERVER_NAME":    "kafka.internal",
		"FALLBACK_KAFKA_SASL_MECHANISM":     "SCRAM-SHA-512",
		"FALLBACK_KAFKA_SASL_USER":          "fallback",
		"FALLBACK_KAFKA_SASL_PASSWORD":      "pw",
		"FALLBACK_KAFKA_SASL_PASSWORD_FILE": "/pw",
		"FALLBACK_REDIS_TLS_CA":             "/rca.pem",
		"FALLBACK_REDIS_TLS_CERT":           "/rcert.pem",
		"FALLBACK_REDIS_TLS_KEY":            "/rkey.pem",
		"FALLBACK_REDIS_PASSWORD_FILE":      "/rpw",
	} {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var c Common
	c.Register(fs)
	if err := fs.Parse([]string{"--kafka-sasl-user", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	want := clients.Kafka{TLS: true, TLSCA: "/ca.pem", TLSCert: "/cert.pem", TLSKey: "/key.pem", TLSServerName: "kafka.internal",
		SASLMechanism: "SCRAM-SHA-512", SASLUser: "from-flag", SASLPassword: "pw", SASLPasswordFile: "/pw"}
	if c.Kafka != want {
		t.Errorf("kafka settings %+v, want %+v", c.Kafka, want)
	}
	wantR := clients.Redis{TLSCA: "/rca.pem", TLSCert: "/rcert.pem", TLSKey: "/rkey.pem", PasswordFile: "/rpw"}
	if c.Redis != wantR {
		t.Errorf("redis settings %+v, want %+v", c.Redis, wantR)
	}
}

// TestCatalogSetting: --catalog is run's alone (GroupCatalog, not in
// GroupAll, which fallback-bench registers and would ignore it), empty is
// auto, and Check refuses an unknown mode naming the flag and variable.
func TestCatalogSetting(t *testing.T) {
	var all Common
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	all.Register(fs)
	if fs.Lookup("catalog") != nil || fs.Lookup("topic-senders") == nil || fs.Lookup("topic-templates") == nil {
		t.Fatalf("GroupAll: --catalog %v, --topic-senders %v, --topic-templates %v",
			fs.Lookup("catalog") != nil, fs.Lookup("topic-senders") != nil, fs.Lookup("topic-templates") != nil)
	}
	for _, tc := range []struct {
		value string
		want  flow.CatalogMode
		err   string
	}{
		{"", flow.CatalogAuto, ""},
		{"auto", flow.CatalogAuto, ""},
		{"Warn", flow.CatalogWarn, ""},
		{"enforce", flow.CatalogEnforce, ""},
		{"off", flow.CatalogOff, ""},
		{"on", flow.CatalogAuto, `--catalog (FALLBACK_CATALOG): catalog mode "on" is not one of auto, off, warn, enforce`},
	} {
		var c Common
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		c.RegisterGroups(fs, GroupCatalog)
		if err := fs.Parse([]string{"--catalog", tc.value}); err != nil {
			t.Fatal(err)
		}
		err := c.Check()
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("%q: Check %v, want %q", tc.value, err, tc.err)
		}
		if got := c.CatalogMode(); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.value, got, tc.want)
		}
	}
}

// TestEventsSetting: --events is a processor setting (fallback-bench has
// it too, to bench both modes), empty is full, and Check refuses an unknown
// mode naming the flag and variable.
func TestEventsSetting(t *testing.T) {
	var all Common
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	all.Register(fs)
	if fs.Lookup("events") == nil {
		t.Fatal("GroupAll has no --events")
	}
	for _, tc := range []struct {
		value string
		want  flow.Events
		err   string
	}{
		{"", flow.EventsFull, ""},
		{"full", flow.EventsFull, ""},
		{"Lean", flow.EventsLean, ""},
		{"none", flow.EventsFull, `--events (FALLBACK_EVENTS): must be full or lean, got "none"`},
	} {
		var c Common
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		c.RegisterGroups(fs, GroupProcessor)
		if err := fs.Parse([]string{"--events", tc.value}); err != nil {
			t.Fatal(err)
		}
		err := c.Check()
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("%q: Check %v, want %q", tc.value, err, tc.err)
		}
		if got := c.EventsMode(); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.value, got, tc.want)
		}
	}
}
