// Command securesetup prepares the secure side of the scripted test services
// (scripts/services-up.sh): a throwaway CA with server and client
// certificates, the broker's SCRAM users, and a check that the broker's
// SASL_SSL listener accepts every mechanism. It is test tooling, built and
// run by services-up.sh; by hand:
//
//	go run ./scripts/securesetup certs -dir /tmp/fallback-services/certs
//	go run ./scripts/securesetup scram -brokers 127.0.0.1:9092 -user fallback -password-file F
//	go run ./scripts/securesetup check -brokers 127.0.0.1:9094 -ca CA -user fallback -password-file F
//
// certs keeps a complete set that is still valid for a day (so clients that
// trust the CA keep working across restarts) and writes a new one otherwise.
// scram creates or updates the user's SCRAM-SHA-256 and SCRAM-SHA-512
// credentials through the plaintext listener (kadm AlterUserSCRAMs), which
// works on a freshly formatted broker and on one formatted before. check
// connects with TLS and each of PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
// until each answers a metadata request (new SCRAM credentials take a moment
// to reach the broker), and exits 1 after the timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/testpki"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: securesetup certs|scram|check [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("securesetup "+os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "certs: directory to write ca.pem, server.pem, server-key.pem, server-keypair.pem, client.pem, client-key.pem")
	hosts := fs.String("hosts", strings.Join(testpki.DefaultHosts, ","), "certs: names and IPs the server certificate is valid for")
	brokers := fs.String("brokers", "127.0.0.1:9092", "scram: the plaintext listener; check: the SASL_SSL listener")
	ca := fs.String("ca", "", "check: CA file")
	user := fs.String("user", "fallback", "scram, check: user name")
	passwordFile := fs.String("password-file", "", "scram, check: file holding the password")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	_ = fs.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "certs":
		err = certs(*dir, strings.Split(*hosts, ","))
	case "scram":
		err = scram(ctx, *brokers, *user, *passwordFile)
	case "check":
		err = check(ctx, *brokers, *ca, *user, *passwordFile)
	default:
		err = fmt.Errorf("unknown command %q: certs, scram or check", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "securesetup:", err)
		os.Exit(1)
	}
}

func certs(dir string, hosts []string) error {
	if dir == "" {
		return errors.New("certs: -dir is required")
	}
	if err := testpki.Valid(dir); err == nil {
		fmt.Fprintf(os.Stderr, "certificates in %s kept\n", dir)
		return nil
	}
	pki, err := testpki.New(hosts...)
	if err != nil {
		return err
	}
	if _, err := pki.WriteFiles(dir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "certificates written to %s (CA and server certificate for %s, client certificate)\n", dir, strings.Join(hosts, ", "))
	return nil
}

func password(file string) (string, error) {
	if file == "" {
		return "", errors.New("-password-file is required")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// scram upserts the user's SCRAM credentials, one mechanism per request,
// retrying until the controller accepts them or ctx ends.
func scram(ctx context.Context, brokers, user, passwordFile string) error {
	pass, err := password(passwordFile)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, m := range []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512} {
		err := retry(ctx, func() error {
			res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: m, Iterations: 4096, Password: pass}})
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("%s: %w %s", r.User, r.Err, r.ErrMessage)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("scram: %s credentials of %s: %w", m, user, err)
		}
	}
	fmt.Fprintf(os.Stderr, "SCRAM-SHA-256 and SCRAM-SHA-512 credentials of %s set\n", user)
	return nil
}

// check connects to the SASL_SSL listener with each mechanism.
func check(ctx context.Context, brokers, ca, user, passwordFile string) error {
	start := time.Now()
	for _, mech := range clients.Mechanisms {
		k := clients.Kafka{TLS: true, TLSCA: ca, SASLMechanism: mech, SASLUser: user, SASLPasswordFile: passwordFile}
		opts, err := k.Opts()
		if err != nil {
			return err
		}
		err = retry(ctx, func() error {
			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...),
				kgo.RequestRetries(0), kgo.DialTimeout(5 * time.Second)}, opts...)...)
			if err != nil {
				return err
			}
			defer cl.Close()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err = kadm.NewClient(cl).ListBrokers(rctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("check: %s %s at %s: %w", k.SecurityProtocol(), mech, brokers, err)
		}
	}
	fmt.Fprintf(os.Stderr, "SASL_SSL listener %s accepts %s (%s)\n", brokers, strings.Join(clients.Mechanisms, ", "),
		time.Since(start).Round(time.Millisecond))
	return nil
}

func retry(ctx context.Context, op func() error) error {
	for {
		err := op()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
