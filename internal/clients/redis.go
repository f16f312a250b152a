package clients

import (
	"crypto/tls"
	"net/url"

	"github.com/redis/go-redis/v9"
)

// Redis says how to reach Redis. User and password may sit in the URL
// (redis://user:pass@host:port/db), which go-redis reads; rediss:// turns on
// TLS, verified against the system's CAs unless TLSCA names others.
type Redis struct {
	// URL is redis://[user[:pass]@]host:port/db, rediss:// for TLS, with
	// ?addr=host:port&addr=... for a cluster (--redis).
	URL string
	// TLSCA is a PEM file of the CAs to trust for rediss:// (--redis-tls-ca).
	TLSCA string
	// TLSCert and TLSKey are a PEM client certificate and its key, for
	// servers with tls-auth-clients (--redis-tls-cert, --redis-tls-key).
	TLSCert, TLSKey string
	// PasswordFile holds the password (of the URL's user, or of the default
	// user), read once at start, so it need not sit in the URL (--redis-password-file).
	PasswordFile string
}

// Options are the client options for a single server. A URL with addr=
// parameters is a cluster: use ClusterOptions.
func (r Redis) Options() (*redis.Options, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		return nil, flagError("--redis", "%v", err)
	}
	if opts.TLSConfig, err = r.tls(opts.TLSConfig); err != nil {
		return nil, err
	}
	if opts.Password, err = r.password(opts.Password); err != nil {
		return nil, err
	}
	return opts, nil
}

// ClusterOptions are the client options for a cluster URL.
func (r Redis) ClusterOptions() (*redis.ClusterOptions, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	opts, err := redis.ParseClusterURL(r.URL)
	if err != nil {
		return nil, flagError("--redis", "cluster URL: %v", err)
	}
	if opts.TLSConfig, err = r.tls(opts.TLSConfig); err != nil {
		return nil, err
	}
	if opts.Password, err = r.password(opts.Password); err != nil {
		return nil, err
	}
	return opts, nil
}

// IsCluster reports whether the URL lists more nodes with addr= parameters.
func (r Redis) IsCluster() bool {
	u, err := url.Parse(r.URL)
	return err == nil && u.Query().Has("addr")
}

// Client connects to a single server, or to a cluster when the URL lists
// more nodes with addr= parameters. It does not dial: the first command does.
func (r Redis) Client() (redis.UniversalClient, error) {
	if r.IsCluster() {
		opts, err := r.ClusterOptions()
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := r.Options()
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

func (r Redis) check() error {
	if r.URL == "" {
		return flagError("--redis", "no Redis URL given")
	}
	if _, err := url.Parse(r.URL); err != nil {
		// url's error quotes the URL, password and all: say less.
		return flagError("--redis", "not a URL (redis://[user:pass@]host:port/db)")
	}
	return nil
}

// tls completes the TLS config go-redis made for rediss:// (nil for redis://).
func (r Redis) tls(cfg *tls.Config) (*tls.Config, error) {
	if r.TLSCA == "" && r.TLSCert == "" && r.TLSKey == "" {
		return cfg, nil
	}
	if cfg == nil {
		flag := "--redis-tls-ca"
		if r.TLSCA == "" {
			flag = "--redis-tls-cert"
		}
		return nil, flagError(flag, "needs a rediss:// URL in --redis (redis:// does not use TLS)")
	}
	if r.TLSCA != "" {
		pool, err := readCAs("--redis-tls-ca", r.TLSCA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	certs, err := readKeyPair("--redis-tls-cert", "--redis-tls-key", r.TLSCert, r.TLSKey)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = certs
	return cfg, nil
}

func (r Redis) password(fromURL string) (string, error) {
	if r.PasswordFile == "" {
		return fromURL, nil
	}
	if fromURL != "" {
		return "", flagError("--redis-password-file", "the --redis URL holds a password too: give it in one place")
	}
	return readSecret("--redis-password-file", r.PasswordFile)
}

// String is the URL with any password masked, for logs.
func (r Redis) String() string { return RedactURL(r.URL) }

// RedactURL masks the password of a URL.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
