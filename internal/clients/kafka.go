package clients

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms Kafka accepts from fallback.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms are the supported SASL mechanisms.
var Mechanisms = []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512}

// Kafka says how to reach the brokers. The zero value is plaintext without
// authentication (Kafka's PLAINTEXT); TLS gives SSL, a SASL mechanism
// SASL_PLAINTEXT, both SASL_SSL.
type Kafka struct {
	// TLS turns on TLS (--kafka-tls). Any of the other TLS settings implies it.
	TLS bool
	// TLSCA is a PEM file of the CAs to trust instead of the system's (--kafka-tls-ca).
	TLSCA string
	// TLSCert and TLSKey are a PEM client certificate (chain) and its key,
	// for brokers that ask for one (--kafka-tls-cert, --kafka-tls-key).
	TLSCert, TLSKey string
	// TLSServerName is the name the brokers' certificates are checked
	// against; by default the host of each broker address (--kafka-tls-server-name).
	TLSServerName string

	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (any case);
	// empty for no authentication (--kafka-sasl-mechanism).
	SASLMechanism string
	SASLUser      string // --kafka-sasl-user
	// SASLPassword, or SASLPasswordFile read once at start (the file's
	// content less a trailing newline); not both (--kafka-sasl-password,
	// --kafka-sasl-password-file).
	SASLPassword     string
	SASLPasswordFile string
}

// TLSEnabled reports whether connections use TLS.
func (k Kafka) TLSEnabled() bool {
	return k.TLS || k.TLSCA != "" || k.TLSCert != "" || k.TLSKey != "" || k.TLSServerName != ""
}

// Mechanism is the normalised SASL mechanism, "" for none.
func (k Kafka) Mechanism() string { return strings.ToUpper(strings.TrimSpace(k.SASLMechanism)) }

// SecurityProtocol is Kafka's name for the combination: PLAINTEXT, SSL,
// SASL_PLAINTEXT or SASL_SSL.
func (k Kafka) SecurityProtocol() string {
	switch tls, sasl := k.TLSEnabled(), k.Mechanism() != ""; {
	case tls && sasl:
		return "SASL_SSL"
	case tls:
		return "SSL"
	case sasl:
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// Describe is a one-line summary for logs, without secrets.
func (k Kafka) Describe() string {
	s := k.SecurityProtocol()
	if m := k.Mechanism(); m != "" {
		s += " " + m + " user " + k.SASLUser
	}
	return s
}

// Warnings are settings that work but are likely mistakes.
func (k Kafka) Warnings() []string {
	if k.Mechanism() == MechanismPlain && !k.TLSEnabled() {
		return []string{"--kafka-sasl-mechanism PLAIN without --kafka-tls sends the password in clear text"}
	}
	return nil
}

// Opts are the franz-go options for these settings: kgo.DialTLSConfig and
// kgo.SASL as needed, nothing for the zero value. Files are read here, so a
// missing or malformed one fails at start, naming its flag.
func (k Kafka) Opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.TLSEnabled() {
		cfg, err := k.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	mech, err := k.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// TLSConfig is the client TLS config (franz-go clones it per dial and sets
// the server name to the broker's host when TLSServerName is empty).
func (k Kafka) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: strings.TrimSpace(k.TLSServerName)}
	if k.TLSCA != "" {
		pool, err := readCAs("--kafka-tls-ca", k.TLSCA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	certs, err := readKeyPair("--kafka-tls-cert", "--kafka-tls-key", k.TLSCert, k.TLSKey)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = certs
	return cfg, nil
}

func (k Kafka) saslMechanism() (sasl.Mechanism, error) {
	mech := k.Mechanism()
	if mech == "" {
		for _, f := range [][2]string{
			{"--kafka-sasl-user", k.SASLUser}, {"--kafka-sasl-password", k.SASLPassword},
			{"--kafka-sasl-password-file", k.SASLPasswordFile},
		} {
			if f[1] != "" {
				return nil, flagError(f[0], "is set but --kafka-sasl-mechanism is not (one of %s)", strings.Join(Mechanisms, ", "))
			}
		}
		return nil, nil
	}
	switch mech {
	case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
	default:
		return nil, flagError("--kafka-sasl-mechanism", "unknown SASL mechanism %q: use one of %s", k.SASLMechanism, strings.Join(Mechanisms, ", "))
	}
	if k.SASLUser == "" {
		return nil, flagError("--kafka-sasl-user", "SASL %s needs a user", mech)
	}
	pass := k.SASLPassword
	switch {
	case k.SASLPassword != "" && k.SASLPasswordFile != "":
		return nil, flagError("--kafka-sasl-password-file", "set either it or --kafka-sasl-password, not both")
	case k.SASLPasswordFile != "":
		var err error
		if pass, err = readSecret("--kafka-sasl-password-file", k.SASLPasswordFile); err != nil {
			return nil, err
		}
	case pass == "":
		return nil, flagError("--kafka-sasl-password", "SASL %s needs a password (or --kafka-sasl-password-file)", mech)
	}
	switch mech {
	case MechanismPlain:
		return plain.Auth{User: k.SASLUser, Pass: pass}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: k.SASLUser, Pass: pass}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: k.SASLUser, Pass: pass}.AsSha512Mechanism(), nil
	}
	panic(fmt.Sprintf("connect: mechanism %s", mech))
}
