package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/testpki"
)

// TestCommandsCheckSecurityFlags: every command that talks to Kafka builds
// its client with the connection flags, and a bad one stops it at once,
// naming the flag.
func TestCommandsCheckSecurityFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := []string{"--brokers", "127.0.0.1:1", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-user", "u", "--kafka-sasl-password", "p"}
	for _, args := range [][]string{
		{"run"},
		{"topics", "create"},
		{"send"},
		{"providers"},
		{"load"},
	} {
		name := strings.Join(args, " ")
		args := append(append([]string{}, args...), bad...)
		if args[0] == "send" {
			args = append(args, `{"request_id":"r1","kind":"cancel"}`)
		}
		err := dispatch(ctx, args)
		if err == nil || !strings.Contains(err.Error(), "--kafka-sasl-mechanism (FALLBACK_KAFKA_SASL_MECHANISM): unknown SASL mechanism") {
			t.Errorf("%s: err = %v, want the unknown mechanism named", name, err)
		}
	}
	err := dispatch(ctx, []string{"run", "--brokers", "127.0.0.1:1", "--redis", "redis://127.0.0.1:1/0", "--redis-tls-ca", "/nonexistent.pem"})
	if err == nil || !strings.Contains(err.Error(), "--redis-tls-ca (FALLBACK_REDIS_TLS_CA): needs a rediss:// URL") {
		t.Errorf("run with a CA for redis://: err = %v", err)
	}
	err = dispatch(ctx, []string{"flow", "--redis", "rediss://127.0.0.1:1/0", "--redis-tls-ca", "/nonexistent.pem", "r1"})
	if err == nil || !strings.Contains(err.Error(), "--redis-tls-ca (FALLBACK_REDIS_TLS_CA): cannot read CA file") {
		t.Errorf("flow with a missing CA: err = %v", err)
	}
}

// TestCommandsOverTLSAndSASL runs `topics create`, `run` and `send` against
// a Kafka that takes only TLS with SCRAM (kfake) and a Redis that takes only
// TLS with a password (miniredis): the processor's first send must come out.
func TestCommandsOverTLSAndSASL(t *testing.T) {
	dir := t.TempDir()
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := pki.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	kpw, rpw := filepath.Join(dir, "kafka-password"), filepath.Join(dir, "redis-password")
	for p, v := range map[string]string{kpw: "kafka-secret\n", rpw: "redis-secret\n"} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.TLS(serverTLS),
		kfake.Superuser(clients.MechanismScramSHA256, "fallback", "kafka-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	mr := miniredis.NewMiniRedis()
	mr.RequireUserAuth("fallback", "redis-secret")
	if err := mr.StartTLS(serverTLS); err != nil {
		t.Fatal(err)
	}
	defer mr.Close()

	// Kafka through the environment, Redis through flags.
	t.Setenv("FALLBACK_BROKERS", strings.Join(kc.ListenAddrs(), ","))
	t.Setenv("FALLBACK_KAFKA_TLS_CA", files.CA)
	t.Setenv("FALLBACK_KAFKA_SASL_MECHANISM", "scram-sha-256")
	t.Setenv("FALLBACK_KAFKA_SASL_USER", "fallback")
	t.Setenv("FALLBACK_KAFKA_SASL_PASSWORD_FILE", kpw)
	for _, k := range []string{"FALLBACK_REDIS_URL", "FALLBACK_KAFKA_TLS", "FALLBACK_KAFKA_SASL_PASSWORD", "FALLBACK_REDIS_PASSWORD_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	redisFlags := []string{"--redis", "rediss://fallback@" + mr.Addr() + "/0", "--redis-tls-ca", files.CA, "--redis-password-file", rpw}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := dispatch(ctx, []string{"topics", "create", "--partitions", "1"}); err != nil {
		t.Fatalf("topics create: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- dispatch(runCtx, append([]string{"run", "--partitions", "1", "--log-level", "warn"}, redisFlags...))
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	req := `{"request_id":"cli1","recipient":"+4915112345678","params":{"code":"123456"},
	  "steps":[{"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
	           {"from":"ACME","template":"otp_sms","delay_seconds":60}]}`
	if err := dispatch(ctx, []string{"send", req}); err != nil {
		t.Fatalf("send: %v", err)
	}

	// A certificate from another CA: the command stops at once, saying so,
	// instead of the producer retrying without end.
	other, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	otherFiles, err := other.WriteFiles(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = dispatch(ctx, []string{"send", "--kafka-tls-ca", otherFiles.CA, `{"request_id":"cli2","kind":"cancel"}`})
	if err == nil || !strings.Contains(err.Error(), "(SASL_SSL SCRAM-SHA-256 user fallback): unable to dial: tls: failed to verify certificate: x509: certificate signed by unknown authority") {
		t.Errorf("send with another CA: err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("send with another CA took %s to fail", d)
	}

	k := clients.Kafka{TLSCA: files.CA, SASLMechanism: "SCRAM-SHA-256", SASLUser: "fallback", SASLPasswordFile: kpw}
	opts, err := k.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("fallback.sends.whatsapp"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v", err)
		default:
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no send command came out")
		}
		for _, r := range fs.Records() {
			if string(r.Key) == "cli1/0" {
				return
			}
		}
	}
}
