package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/console"
	"github.com/fallbackd/fallback/console/consolewire"
	"github.com/fallbackd/fallback/internal/cliconfig"
)

// `fallback console`: the web console for the people who configure
// fallback (docs/console.md), and `fallback console hash-password`, which
// makes a users file's password hash.

const consoleSynopsis = "console [flags]   (or: fallback console hash-password < password)"

// consoleSettings are the console's own flags.
type consoleSettings struct {
	addr, users, tlsCert, tlsKey string
	insecureLocal                bool
}

func consoleCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "hash-password" {
		return hashPasswordCommand(args[1:], os.Stdin, os.Stdout)
	}
	fs, c := newFlags("console", consoleSynopsis, cliconfig.GroupKafka|cliconfig.GroupRedis|cliconfig.GroupTopics)
	var s consoleSettings
	fs.StringVar(&s.addr, "http-addr", "127.0.0.1:8080", "where the console listens (host:port); a non-loopback address needs --users (env FALLBACK_HTTP_ADDR)")
	fs.StringVar(&s.users, "users", "", "the users file: one line name:role:bcrypt-hash, roles viewer, editor, admin (fallback console hash-password makes a hash) (env FALLBACK_USERS)")
	fs.BoolVar(&s.insecureLocal, "insecure-local", false, "serve without users, everyone an admin named local: only on a loopback address (env FALLBACK_INSECURE_LOCAL)")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM); with --tls-key (env FALLBACK_TLS_CERT)")
	fs.StringVar(&s.tlsKey, "tls-key", "", "the certificate's private key (PEM) (env FALLBACK_TLS_KEY)")
	c.ReadEnv(fs, "http-addr", "users", "insecure-local", "tls-cert", "tls-key")
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("usage: fallback " + consoleSynopsis)
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return errors.New("console: --tls-cert and --tls-key go together")
	}
	if err := console.CheckListenAddr(s.addr, s.insecureLocal); err != nil {
		return err
	}
	var users []console.User
	if s.users != "" {
		var err error
		if users, err = console.LoadUsers(s.users); err != nil {
			return err
		}
	}
	if len(users) == 0 && !s.insecureLocal {
		return errors.New("console: no users: give --users FILE (fallback console hash-password makes a hash), or --insecure-local on a loopback address")
	}
	brokers, err := c.BrokerList()
	if err != nil {
		return err
	}
	kafkaOpts, err := c.KafkaOpts()
	if err != nil {
		return err
	}
	rc, states, err := redisStore(c)
	if err != nil {
		return err
	}
	defer rc.Close()
	log := c.Logger()
	app, err := consolewire.Open(ctx, consolewire.Options{Brokers: brokers, KafkaOpts: kafkaOpts, Names: c.Names,
		States: states, Validator: client.DefaultValidator(), Users: users, InsecureLocal: s.insecureLocal, Logger: log})
	if err != nil {
		return err
	}
	defer app.Close()
	return serveConsole(ctx, app, s, log, os.Stdout)
}

// serveConsole serves app on s.addr until ctx ends, following the events
// meanwhile; it prints the URL once it listens.
func serveConsole(ctx context.Context, app *consolewire.App, s consoleSettings, log *slog.Logger, stdout io.Writer) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("console: listen on %s: %w", s.addr, err)
	}
	srv := &http.Server{Handler: app.Server.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if s.tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "console on %s://%s/\n", scheme, ln.Addr())
	served := make(chan error, 1)
	go func() {
		if s.tlsCert != "" {
			served <- srv.ServeTLS(ln, s.tlsCert, s.tlsKey)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	followed := make(chan error, 1)
	go func() { followed <- app.Run(ctx) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if ctx.Err() == nil {
		return fmt.Errorf("console: serve: %w", err)
	}
	<-followed
	return nil
}

// hashPasswordCommand reads a password (its first line) from stdin and
// prints its bcrypt hash for a users file line.
func hashPasswordCommand(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			fmt.Fprintln(stdout, "usage: fallback console hash-password < password-file\nprints the bcrypt hash of the first line of standard input, for a users file line name:role:HASH")
			return errDone
		}
		return usageError("usage: fallback console hash-password < password-file (the password is never an argument: it would be in the shell history)")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("console: read the password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("console: hash-password: empty password on standard input")
	}
	hash, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, hash)
	return err
}
