package cliconfig

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clients"
)

// registerSecurity adds the connection settings shared by every command
// that talks to Kafka or Redis: TLS and SASL for Kafka, TLS and a password
// file for Redis (docs/security.md). The options are built by package
// clients.
func (c *Common) registerSecurity(kfs, rfs *flag.FlagSet) {
	k, r := &c.Kafka, &c.Redis
	kfs.BoolVar(&k.TLS, "kafka-tls", false, "connect to Kafka with TLS; implied by the other --kafka-tls-* flags (env FALLBACK_KAFKA_TLS)")
	kfs.StringVar(&k.TLSCA, "kafka-tls-ca", "", "PEM file of the CAs that sign the brokers' certificates, instead of the system's (env FALLBACK_KAFKA_TLS_CA)")
	kfs.StringVar(&k.TLSCert, "kafka-tls-cert", "", "PEM client certificate, for brokers that ask for one; needs --kafka-tls-key (env FALLBACK_KAFKA_TLS_CERT)")
	kfs.StringVar(&k.TLSKey, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert (env FALLBACK_KAFKA_TLS_KEY)")
	kfs.StringVar(&k.TLSServerName, "kafka-tls-server-name", "", "name to check the brokers' certificates against, instead of each broker's host (env FALLBACK_KAFKA_TLS_SERVER_NAME)")
	kfs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none (env FALLBACK_KAFKA_SASL_MECHANISM)")
	kfs.StringVar(&k.SASLUser, "kafka-sasl-user", "", "SASL user name (env FALLBACK_KAFKA_SASL_USER)")
	kfs.StringVar(&k.SASLPassword, "kafka-sasl-password", "", "SASL password; prefer the variable or --kafka-sasl-password-file, a flag shows in the process list (env FALLBACK_KAFKA_SASL_PASSWORD)")
	kfs.StringVar(&k.SASLPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password, read at start (env FALLBACK_KAFKA_SASL_PASSWORD_FILE)")
	rfs.StringVar(&r.TLSCA, "redis-tls-ca", "", "PEM file of the CAs that sign Redis's certificate, for a rediss:// URL (env FALLBACK_REDIS_TLS_CA)")
	rfs.StringVar(&r.TLSCert, "redis-tls-cert", "", "PEM client certificate for Redis; needs --redis-tls-key and a rediss:// URL (env FALLBACK_REDIS_TLS_CERT)")
	rfs.StringVar(&r.TLSKey, "redis-tls-key", "", "PEM private key of --redis-tls-cert (env FALLBACK_REDIS_TLS_KEY)")
	rfs.StringVar(&r.PasswordFile, "redis-password-file", "", "file holding the Redis password (of the URL's user, or the default user), read at start (env FALLBACK_REDIS_PASSWORD_FILE)")
}

// KafkaOpts are the Kafka client options of the connection flags (TLS,
// SASL); every command that makes a Kafka client adds them.
func (c *Common) KafkaOpts() ([]kgo.Opt, error) {
	return c.Kafka.Opts()
}

// KafkaClient makes a client with the connection flags and opts, and
// checks that the brokers take it (checkKafka).
func (c *Common) KafkaClient(ctx context.Context, brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	sec, err := c.KafkaOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, sec...), opts...)...)
	if err != nil {
		return nil, err
	}
	if err := checkKafka(ctx, cl, brokers, c.Kafka); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// checkKafka asks the brokers for metadata. A producer retries a failed
// connection without end, so without this check a wrong password or an
// untrusted certificate would leave `send` or `load` hanging; a metadata
// request fails at once with the broker's answer (SASL_AUTHENTICATION_FAILED,
// x509: certificate signed by unknown authority), which this reports with
// the security protocol in use.
func checkKafka(ctx context.Context, cl *kgo.Client, brokers []string, k clients.Kafka) error {
	if _, err := kadm.NewClient(cl).ListBrokers(ctx); err != nil {
		return fmt.Errorf("kafka %s (%s): %w", strings.Join(brokers, ","), k.Describe(), err)
	}
	return nil
}

// CheckBrokers runs checkKafka for commands whose clients are made
// elsewhere (the processor, the simulator).
func (c *Common) CheckBrokers(ctx context.Context, brokers []string) error {
	cl, err := c.KafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	cl.Close()
	return nil
}

// WarnInsecure logs settings that work but are likely mistakes.
func (c *Common) WarnInsecure(log *slog.Logger) {
	for _, w := range c.Kafka.Warnings() {
		log.Warn(w)
	}
}
