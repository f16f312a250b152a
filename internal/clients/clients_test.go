package clients

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/internal/testpki"
)

// files writes a test PKI and a password file into a temp dir.
func files(t *testing.T) (testpki.Files, string) {
	t.Helper()
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := pki.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, pw
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantErr checks that err names the flag and its variable, and says what.
func wantErr(t *testing.T, err error, flag, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %s", flag)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, flag+" ("+envOf(flag)+"): ") {
		t.Errorf("error %q does not start with %s (%s)", msg, flag, envOf(flag))
	}
	if !strings.Contains(msg, what) {
		t.Errorf("error %q does not say %q", msg, what)
	}
}

func TestEnvOf(t *testing.T) {
	for flag, want := range map[string]string{
		"--kafka-tls-ca":        "FALLBACK_KAFKA_TLS_CA",
		"--kafka-sasl-password": "FALLBACK_KAFKA_SASL_PASSWORD",
		"--redis-password-file": "FALLBACK_REDIS_PASSWORD_FILE",
		"--redis":               "FALLBACK_REDIS_URL",
	} {
		if got := envOf(flag); got != want {
			t.Errorf("envOf(%s) = %s, want %s", flag, got, want)
		}
	}
}

func TestKafkaZeroIsPlaintext(t *testing.T) {
	var k Kafka
	opts, err := k.Opts()
	if err != nil || len(opts) != 0 {
		t.Fatalf("zero settings: %d options, %v; want none", len(opts), err)
	}
	if k.SecurityProtocol() != "PLAINTEXT" || k.Describe() != "PLAINTEXT" {
		t.Errorf("protocol %s, describe %q", k.SecurityProtocol(), k.Describe())
	}
}

func TestKafkaOptsErrors(t *testing.T) {
	f, pw := files(t)
	notPEM := writeFile(t, "ca.pem", "not a certificate\n")
	empty := writeFile(t, "empty", "\n")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	scram := func(k Kafka) Kafka {
		k.SASLMechanism, k.SASLUser, k.SASLPassword = "SCRAM-SHA-512", "fallback", "pw"
		return k
	}
	for _, tc := range []struct {
		name string
		k    Kafka
		flag string
		what string
	}{
		{"unknown mechanism", Kafka{SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"},
			"--kafka-sasl-mechanism", `unknown SASL mechanism "GSSAPI": use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{"mechanism without user", Kafka{SASLMechanism: "PLAIN", SASLPassword: "p"}, "--kafka-sasl-user", "needs a user"},
		{"mechanism without password", Kafka{SASLMechanism: "SCRAM-SHA-256", SASLUser: "u"}, "--kafka-sasl-password", "needs a password"},
		{"password and file", Kafka{SASLMechanism: "PLAIN", SASLUser: "u", SASLPassword: "p", SASLPasswordFile: pw},
			"--kafka-sasl-password-file", "not both"},
		{"password file missing", Kafka{SASLMechanism: "PLAIN", SASLUser: "u", SASLPasswordFile: missing},
			"--kafka-sasl-password-file", "cannot read password file"},
		{"password file empty", Kafka{SASLMechanism: "PLAIN", SASLUser: "u", SASLPasswordFile: empty},
			"--kafka-sasl-password-file", "is empty"},
		{"user without mechanism", Kafka{SASLUser: "u"}, "--kafka-sasl-user", "--kafka-sasl-mechanism is not"},
		{"password without mechanism", Kafka{SASLPassword: "p"}, "--kafka-sasl-password", "--kafka-sasl-mechanism is not"},
		{"CA unreadable", scram(Kafka{TLS: true, TLSCA: missing}), "--kafka-tls-ca", "cannot read CA file"},
		{"CA not PEM", Kafka{TLSCA: notPEM}, "--kafka-tls-ca", "holds no PEM certificate"},
		{"cert without key", Kafka{TLS: true, TLSCert: f.ClientCert}, "--kafka-tls-cert", "set --kafka-tls-key too"},
		{"key without cert", Kafka{TLS: true, TLSKey: f.ClientKey}, "--kafka-tls-key", "set --kafka-tls-cert too"},
		{"cert unreadable", Kafka{TLS: true, TLSCert: missing, TLSKey: f.ClientKey}, "--kafka-tls-cert", "cannot read file"},
		{"key unreadable", Kafka{TLS: true, TLSCert: f.ClientCert, TLSKey: missing}, "--kafka-tls-key", "cannot read file"},
		{"cert and key do not match", Kafka{TLS: true, TLSCert: f.ClientCert, TLSKey: f.ServerKey}, "--kafka-tls-cert", "private key does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.k.Opts()
			wantErr(t, err, tc.flag, tc.what)
		})
	}
}

func TestKafkaOpts(t *testing.T) {
	f, pw := files(t)
	k := Kafka{TLSCA: f.CA, TLSCert: f.ClientCert, TLSKey: f.ClientKey, TLSServerName: "kafka.internal",
		SASLMechanism: "scram-sha-512", SASLUser: "fallback", SASLPasswordFile: pw}
	if !k.TLSEnabled() {
		t.Fatal("a CA file does not imply TLS")
	}
	opts, err := k.Opts()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 2 {
		t.Fatalf("%d options, want TLS and SASL", len(opts))
	}
	cfg, err := k.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.ServerName != "kafka.internal" || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS config: roots %v, %d certificates, server name %q, min version %x",
			cfg.RootCAs != nil, len(cfg.Certificates), cfg.ServerName, cfg.MinVersion)
	}
	mech, err := k.saslMechanism()
	if err != nil || mech.Name() != "SCRAM-SHA-512" {
		t.Fatalf("mechanism %v, %v", mech, err)
	}
	if got := k.Describe(); got != "SASL_SSL SCRAM-SHA-512 user fallback" {
		t.Errorf("describe %q", got)
	}
	if strings.Contains(k.Describe(), "s3cret") {
		t.Error("describe shows the password")
	}

	for in, want := range map[string]string{"PLAIN": "PLAIN", " scram-sha-256 ": "SCRAM-SHA-256", "SCRAM-SHA-512": "SCRAM-SHA-512"} {
		mech, err := Kafka{SASLMechanism: in, SASLUser: "u", SASLPassword: "p"}.saslMechanism()
		if err != nil || mech.Name() != want {
			t.Errorf("mechanism %q: %v, %v; want %s", in, mech, err, want)
		}
	}

	// TLS alone: the system's roots, the broker host as server name.
	cfg, err = Kafka{TLS: true}.TLSConfig()
	if err != nil || cfg.RootCAs != nil || cfg.ServerName != "" || cfg.Certificates != nil {
		t.Errorf("plain TLS config: %+v, %v", cfg, err)
	}
	if p := (Kafka{SASLMechanism: "PLAIN", SASLUser: "u", SASLPassword: "p"}); p.SecurityProtocol() != "SASL_PLAINTEXT" || len(p.Warnings()) != 1 {
		t.Errorf("PLAIN without TLS: protocol %s, warnings %v", p.SecurityProtocol(), p.Warnings())
	}
	if p := (Kafka{TLS: true, SASLMechanism: "PLAIN", SASLUser: "u", SASLPassword: "p"}); len(p.Warnings()) != 0 {
		t.Errorf("PLAIN with TLS warns: %v", p.Warnings())
	}
	if p := (Kafka{TLSServerName: "x"}); p.SecurityProtocol() != "SSL" {
		t.Errorf("a server name does not imply TLS: %s", p.SecurityProtocol())
	}
}

func TestRedisOptions(t *testing.T) {
	f, pw := files(t)
	r := Redis{URL: "rediss://fallback@127.0.0.1:6380/2", TLSCA: f.CA, TLSCert: f.ClientCert, TLSKey: f.ClientKey, PasswordFile: pw}
	opts, err := r.Options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Username != "fallback" || opts.Password != "s3cret" || opts.DB != 2 {
		t.Errorf("user %q password %q db %d", opts.Username, opts.Password, opts.DB)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.RootCAs == nil || len(opts.TLSConfig.Certificates) != 1 || opts.TLSConfig.ServerName != "127.0.0.1" {
		t.Errorf("TLS config %+v", opts.TLSConfig)
	}

	r.URL = "rediss://fallback@127.0.0.1:6380?addr=127.0.0.1:6381"
	if !r.IsCluster() {
		t.Fatal("addr= URL is not a cluster")
	}
	copts, err := r.ClusterOptions()
	if err != nil {
		t.Fatal(err)
	}
	if len(copts.Addrs) != 2 || copts.Password != "s3cret" || copts.TLSConfig == nil || copts.TLSConfig.RootCAs == nil {
		t.Errorf("cluster options: addrs %v password %q TLS %+v", copts.Addrs, copts.Password, copts.TLSConfig)
	}
	if c, err := r.Client(); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}

	// The password in the URL, as before.
	opts, err = Redis{URL: "redis://u:p@127.0.0.1:6379/0"}.Options()
	if err != nil || opts.Username != "u" || opts.Password != "p" || opts.TLSConfig != nil {
		t.Errorf("plain URL: %+v %v", opts, err)
	}
}

func TestRedisOptionsErrors(t *testing.T) {
	f, pw := files(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		r    Redis
		flag string
		what string
	}{
		{"no URL", Redis{}, "--redis", "no Redis URL"},
		{"bad scheme", Redis{URL: "http://127.0.0.1:6379"}, "--redis", "invalid URL scheme"},
		{"CA without TLS", Redis{URL: "redis://127.0.0.1:6379/0", TLSCA: f.CA}, "--redis-tls-ca", "needs a rediss:// URL"},
		{"cert without TLS", Redis{URL: "redis://127.0.0.1:6379/0", TLSCert: f.ClientCert, TLSKey: f.ClientKey}, "--redis-tls-cert", "needs a rediss:// URL"},
		{"CA unreadable", Redis{URL: "rediss://127.0.0.1:6379/0", TLSCA: missing}, "--redis-tls-ca", "cannot read CA file"},
		{"cert without key", Redis{URL: "rediss://127.0.0.1:6379/0", TLSCert: f.ClientCert}, "--redis-tls-cert", "set --redis-tls-key too"},
		{"key without cert", Redis{URL: "rediss://127.0.0.1:6379/0", TLSKey: f.ClientKey}, "--redis-tls-key", "set --redis-tls-cert too"},
		{"password twice", Redis{URL: "redis://u:p@127.0.0.1:6379/0", PasswordFile: pw}, "--redis-password-file", "holds a password too"},
		{"password file unreadable", Redis{URL: "redis://u@127.0.0.1:6379/0", PasswordFile: missing}, "--redis-password-file", "cannot read password file"},
		{"cluster password twice", Redis{URL: "redis://u:p@127.0.0.1:6379?addr=127.0.0.1:6380", PasswordFile: pw}, "--redis-password-file", "holds a password too"},
		{"cluster CA without TLS", Redis{URL: "redis://127.0.0.1:6379?addr=127.0.0.1:6380", TLSCA: f.CA}, "--redis-tls-ca", "needs a rediss:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.r.Client()
			wantErr(t, err, tc.flag, tc.what)
		})
	}
	// A URL that does not parse is not echoed (it may hold a password).
	_, err := Redis{URL: "redis://u:hunter2@[::1"}.Client()
	wantErr(t, err, "--redis", "not a URL")
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	if got := RedactURL("rediss://u:hunter2@h:6380/0"); strings.Contains(got, "hunter2") || !strings.Contains(got, "u:xxxxx@h:6380") {
		t.Errorf("RedactURL = %q", got)
	}
}
