// Package clients turns the connection settings of the fallback commands
// (TLS, SASL, passwords) into franz-go client options and go-redis clients.
// cmd/fallback fills the settings from its flags and FALLBACK_* variables;
// the tests use the same code. Errors name the flag and its variable, e.g.
//
//	--kafka-tls-ca (FALLBACK_KAFKA_TLS_CA): cannot read CA file: open /etc/ca.pem: no such file or directory
//
// docs/security.md describes what is supported.
package clients

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// flagError names the flag (and its FALLBACK_* variable) a setting came from.
func flagError(flag, format string, args ...any) error {
	return fmt.Errorf("%s (%s): %s", flag, envOf(flag), fmt.Sprintf(format, args...))
}

// EnvOf is the FALLBACK_* variable that sets a flag (see envOf).
func EnvOf(flag string) string { return envOf(flag) }

// envOf is the variable that sets a flag: --kafka-tls-ca is
// FALLBACK_KAFKA_TLS_CA; --redis, the URL, is FALLBACK_REDIS_URL.
func envOf(flag string) string {
	name := strings.TrimLeft(flag, "-")
	if name == "redis" {
		name = "redis-url"
	}
	return "FALLBACK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// readCAs reads a PEM file of CA certificates into a new pool.
func readCAs(flag, path string) (*x509.CertPool, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, flagError(flag, "cannot read CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		return nil, flagError(flag, "%s holds no PEM certificate", path)
	}
	return pool, nil
}

// readKeyPair loads a client certificate and its key; both or neither.
func readKeyPair(certFlag, keyFlag, certPath, keyPath string) ([]tls.Certificate, error) {
	switch {
	case certPath == "" && keyPath == "":
		return nil, nil
	case keyPath == "":
		return nil, flagError(certFlag, "a client certificate needs its key: set %s too", keyFlag)
	case certPath == "":
		return nil, flagError(keyFlag, "a client key needs its certificate: set %s too", certFlag)
	}
	for _, f := range [][2]string{{certFlag, certPath}, {keyFlag, keyPath}} {
		if _, err := os.Stat(f[1]); err != nil {
			return nil, flagError(f[0], "cannot read file: %v", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, flagError(certFlag, "client certificate %s with key %s (%s): %v", certPath, keyPath, keyFlag, err)
	}
	return []tls.Certificate{pair}, nil
}

// readSecret reads a password file: the whole file less a trailing newline.
func readSecret(flag, path string) (string, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return "", flagError(flag, "cannot read password file: %v", err)
	}
	s := strings.TrimRight(string(body), "\r\n")
	if s == "" {
		return "", flagError(flag, "password file %s is empty", path)
	}
	return s, nil
}
