package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/testpki"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// secureServers are a Kafka that takes only TLS with SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512) and a Redis that takes only TLS with a
// password. The real ones come from scripts/services-up.sh through the
// FALLBACK_TEST_* variables it prints (the broker's SASL_SSL listener; a
// redis-server with tls-port, requirepass and an ACL user); without them the
// tests run on kfake with SASL and TLS and on miniredis with TLS and a user
// password, so they never skip.
type secureServers struct {
	kafkaName, redisName string
	realKafka            bool

	brokers       []string
	kafkaCA       string
	kafkaUser     string
	kafkaPassword string

	redisURL      string // rediss://user@host:port/db, no password
	redisCA       string
	redisPassword string

	clientCert, clientKey string // a client certificate the servers accept
	dir                   string // for password files
}

func newSecureServers(t *testing.T) *secureServers {
	t.Helper()
	s := &secureServers{dir: t.TempDir()}
	var pki *testpki.PKI
	embedded := func() *testpki.PKI {
		if pki == nil {
			var err error
			if pki, err = testpki.New(); err != nil {
				t.Fatal(err)
			}
			f, err := pki.WriteFiles(filepath.Join(s.dir, "certs"))
			if err != nil {
				t.Fatal(err)
			}
			s.clientCert, s.clientKey = f.ClientCert, f.ClientKey
		}
		return pki
	}
	serverTLS := func() *tlsFiles {
		p := embedded()
		cfg, err := p.ServerTLS()
		if err != nil {
			t.Fatal(err)
		}
		return &tlsFiles{cfg: cfg, ca: testpki.Paths(filepath.Join(s.dir, "certs")).CA}
	}
	s.clientCert, s.clientKey = os.Getenv("FALLBACK_TEST_TLS_CLIENT_CERT"), os.Getenv("FALLBACK_TEST_TLS_CLIENT_KEY")

	if addr := os.Getenv("FALLBACK_TEST_KAFKA_SECURE"); addr != "" {
		s.kafkaName, s.realKafka = "real broker SASL_SSL listener "+addr, true
		s.brokers = strings.Split(addr, ",")
		s.kafkaCA = os.Getenv("FALLBACK_TEST_KAFKA_CA")
		s.kafkaUser, s.kafkaPassword = os.Getenv("FALLBACK_TEST_KAFKA_USER"), os.Getenv("FALLBACK_TEST_KAFKA_PASSWORD")
		if s.kafkaCA == "" || s.kafkaUser == "" || s.kafkaPassword == "" {
			t.Fatal("FALLBACK_TEST_KAFKA_SECURE needs FALLBACK_TEST_KAFKA_CA, _USER and _PASSWORD (scripts/services-up.sh prints them)")
		}
	} else {
		tf := serverTLS()
		s.kafkaUser, s.kafkaPassword = "fallback", fmt.Sprintf("pw-%x", rand.Uint64())
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(3), kfake.EnableSASL(), kfake.TLS(tf.cfg)}
		for _, m := range clients.Mechanisms {
			opts = append(opts, kfake.Superuser(m, s.kafkaUser, s.kafkaPassword))
		}
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		s.kafkaName = "embedded kfake with SASL and TLS"
		s.brokers, s.kafkaCA = c.ListenAddrs(), tf.ca
	}

	if u := os.Getenv("FALLBACK_TEST_REDIS_SECURE_URL"); u != "" {
		s.redisName = "real redis-server " + clients.RedactURL(u)
		s.redisURL, s.redisCA, s.redisPassword = u, os.Getenv("FALLBACK_TEST_REDIS_CA"), os.Getenv("FALLBACK_TEST_REDIS_PASSWORD")
		if s.redisPassword == "" {
			t.Fatal("FALLBACK_TEST_REDIS_SECURE_URL needs FALLBACK_TEST_REDIS_PASSWORD (scripts/services-up.sh prints it)")
		}
	} else {
		tf := serverTLS()
		m := miniredis.NewMiniRedis()
		s.redisPassword = fmt.Sprintf("pw-%x", rand.Uint64())
		m.RequireUserAuth("fallback", s.redisPassword)
		if err := m.StartTLS(tf.cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		s.redisName = "embedded miniredis with TLS and a user password"
		s.redisURL, s.redisCA = "rediss://fallback@"+m.Addr()+"/0", tf.ca
	}
	t.Logf("secure kafka: %s; secure redis: %s", s.kafkaName, s.redisName)
	return s
}

// tlsFiles are a listener's TLS config and the CA file clients need.
type tlsFiles struct {
	cfg *tls.Config
	ca  string
}

// secret writes a password file, as --kafka-sasl-password-file and
// --redis-password-file read.
func (s *secureServers) secret(t *testing.T, pw string) string {
	t.Helper()
	f, err := os.CreateTemp(s.dir, "password")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(pw + "\n"); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// kafka is the connection settings for a mechanism, as the flags give them.
func (s *secureServers) kafka(t *testing.T, mech, password string) clients.Kafka {
	return clients.Kafka{TLS: true, TLSCA: s.kafkaCA, SASLMechanism: mech, SASLUser: s.kafkaUser,
		SASLPasswordFile: s.secret(t, password)}
}

func (s *secureServers) kafkaOpts(t *testing.T, k clients.Kafka) []kgo.Opt {
	t.Helper()
	opts, err := k.Opts()
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func (s *secureServers) redis(t *testing.T, password string) clients.Redis {
	return clients.Redis{URL: s.redisURL, TLSCA: s.redisCA, PasswordFile: s.secret(t, password)}
}

// TestSecureFlow runs a whole flow (request, send, DLR, FLOW_CLOSED)
// through a processor that reaches Kafka over TLS with SCRAM-SHA-512 and
// Redis over TLS as an ACL user whose password comes from a file.
func TestSecureFlow(t *testing.T) {
	s := newSecureServers(t)
	k := s.kafka(t, clients.MechanismScramSHA512, s.kafkaPassword)
	if k.SecurityProtocol() != "SASL_SSL" {
		t.Fatalf("protocol %s", k.SecurityProtocol())
	}
	r := s.redis(t, s.redisPassword)
	r.TLSCert, r.TLSKey = s.clientCert, s.clientKey // accepted, and checked, when given
	h := newHarnessOn(t, target{brokers: s.brokers, kafkaOpts: s.kafkaOpts(t, k), redis: r.Client})
	h.start(nil)
	h.request(otp("sec1"))
	send := h.waitSend("sec1/0")
	if send.To != "+4915112345678" || send.Channel != "whatsapp" {
		t.Fatalf("send = %+v", send)
	}
	h.status("sec1/0", "delivered")
	if closed := h.waitClosed("sec1"); closed.Outcome != flow.OutcomeDelivered {
		t.Fatalf("closed = %+v", closed)
	}
	snaps, err := h.store.Load(h.ctx, []string{"sec1"})
	if err != nil || !snaps[0].Exists {
		t.Fatalf("flow state not in the secure redis: %+v, %v", snaps, err)
	}
}

// TestSecureMechanisms connects, produces and consumes with each SASL
// mechanism over TLS, once with a client certificate too.
func TestSecureMechanisms(t *testing.T) {
	s := newSecureServers(t)
	for _, tc := range []struct {
		mech       string
		clientCert bool
	}{
		{clients.MechanismPlain, false},
		{clients.MechanismScramSHA256, false},
		{clients.MechanismScramSHA512, false},
		{clients.MechanismPlain, true},
	} {
		name := tc.mech
		if tc.clientCert {
			name += "+client-cert"
		}
		t.Run(name, func(t *testing.T) {
			k := s.kafka(t, tc.mech, s.kafkaPassword)
			if tc.clientCert {
				k.TLSCert, k.TLSKey = s.clientCert, s.clientKey
			}
			roundTrip(t, s.brokers, s.kafkaOpts(t, k))
		})
	}
}

// roundTrip creates a topic, produces a record and reads it back.
func roundTrip(t *testing.T, brokers []string, opts []kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := fmt.Sprintf("sec%x", rand.Uint64()&0xffffffffff)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	defer adm.DeleteTopics(context.Background(), topic) //nolint:errcheck // best effort
	want := fmt.Sprintf("hello %x", rand.Uint64())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(want)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Logf("fetch errors (retried): %v", errs)
		}
		if recs := fs.Records(); len(recs) > 0 {
			if got := string(recs[0].Value); got != want {
				t.Fatalf("read %q, want %q", got, want)
			}
			return
		}
	}
}

// TestSecureRejects checks that bad credentials fail, fast and saying why.
func TestSecureRejects(t *testing.T) {
	s := newSecureServers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	kafkaErr := func(t *testing.T, k clients.Kafka) error {
		t.Helper()
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.brokers...), kgo.RequestRetries(1)}, s.kafkaOpts(t, k)...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).ListBrokers(rctx)
		return err
	}
	for _, mech := range clients.Mechanisms {
		t.Run("kafka wrong password "+mech, func(t *testing.T) {
			err := kafkaErr(t, s.kafka(t, mech, "wrong-"+s.kafkaPassword))
			if !s.realKafka {
				// kfake closes the connection instead of answering
				// SASL_AUTHENTICATION_FAILED: the client sees EOF.
				if err == nil {
					t.Fatal("no error with a wrong password")
				}
				t.Logf("kfake: %v", err)
				return
			}
			wantAuthError(t, err)
		})
	}
	t.Run("kafka unknown CA", func(t *testing.T) {
		k := s.kafka(t, clients.MechanismScramSHA512, s.kafkaPassword)
		k.TLSCA = "" // the system's roots do not know the test CA
		err := kafkaErr(t, k)
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("err = %v, want an unknown authority error", err)
		}
	})
	t.Run("kafka no TLS", func(t *testing.T) {
		k := s.kafka(t, clients.MechanismScramSHA512, s.kafkaPassword)
		k.TLS, k.TLSCA = false, ""
		if err := kafkaErr(t, k); err == nil {
			t.Fatal("a plaintext client got an answer from the TLS listener")
		}
	})
	t.Run("processor wrong password", func(t *testing.T) {
		// The processor stops with the broker's answer instead of retrying forever.
		if !s.realKafka {
			t.Skip("kfake closes the connection on bad credentials instead of answering SASL_AUTHENTICATION_FAILED, " +
				"which franz-go retries like a network error; this case runs against the real broker (FALLBACK_TEST_KAFKA_SECURE)")
		}
		k := s.kafka(t, clients.MechanismScramSHA512, "wrong-"+s.kafkaPassword)
		rc, err := s.redis(t, s.redisPassword).Client()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		p, err := processor.New(processor.Config{Brokers: s.brokers, KafkaOpts: s.kafkaOpts(t, k), CreateTopics: true,
			Group: fmt.Sprintf("sec%x", rand.Uint64()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			statestore.New(rc, statestore.Config{Prefix: "secrej"}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = p.Run(ctx)
		t.Logf("processor stopped after %s: %v", time.Since(start).Round(time.Millisecond), err)
		wantAuthError(t, err)
	})

	redisErr := func(t *testing.T, r clients.Redis) error {
		t.Helper()
		rc, err := r.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		return rc.Ping(ctx).Err()
	}
	t.Run("redis right password", func(t *testing.T) {
		if err := redisErr(t, s.redis(t, s.redisPassword)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("redis wrong password", func(t *testing.T) {
		err := redisErr(t, s.redis(t, "wrong-"+s.redisPassword))
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("err = %v, want WRONGPASS", err)
		}
	})
	t.Run("redis no password", func(t *testing.T) {
		r := s.redis(t, s.redisPassword)
		r.PasswordFile = ""
		err := redisErr(t, r)
		if err == nil || !(strings.Contains(err.Error(), "NOAUTH") || strings.Contains(err.Error(), "WRONGPASS")) {
			t.Fatalf("err = %v, want NOAUTH or WRONGPASS", err)
		}
	})
	if strings.HasPrefix(s.redisURL, "rediss://") {
		t.Run("redis unknown CA", func(t *testing.T) {
			r := s.redis(t, s.redisPassword)
			r.TLSCA = ""
			err := redisErr(t, r)
			if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("err = %v, want an unknown authority error", err)
			}
		})
	}
}

// wantAuthError: the error says that authentication failed.
func wantAuthError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error with a wrong password")
	}
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "sasl") && !strings.Contains(msg, "authenticat") {
		t.Fatalf("error %q does not say that authentication failed", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed out instead of failing: %v", err)
	}
}
