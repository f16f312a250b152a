package cliconfig

import (
	"flag"
	"testing"

	"github.com/fallbackd/fallback/internal/clients"
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
