package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/fallbackd/fallback/internal/clients"
)

// writeConfig prints every flag of fs with its effective value (after the
// command line, the FALLBACK_* variables, the --config file and the
// defaults) and its variable, secrets hidden, for `fallback run
// --print-config`. It returns errDone: the command did what was asked.
func writeConfig(w io.Writer, fs *flag.FlagSet) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "# fallback "+fs.Name()+": effective configuration (flag, then FALLBACK_* variable, then --config file, then default)")
	fmt.Fprintln(tw, "flag\tvalue\tenv")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "print-config" {
			return
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\n", f.Name, shownValue(f.Name, f.Value.String()), clients.EnvOf("--"+f.Name))
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	return errDone
}

// shownValue is a setting's value as --print-config shows it: a password
// (or other secret) as "(hidden)" when set, the password inside a URL
// masked, "" quoted so an empty value is visible.
func shownValue(name, v string) string {
	switch {
	case v == "":
		return `""`
	case isSecret(name):
		return "(hidden)"
	case strings.Contains(v, "://"):
		return redactURL(v)
	}
	return v
}

// redactURL masks the password in a URL's user part (clients.RedactURL) and
// in any query parameter whose name says it holds one.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	for k := range q {
		if isSecret(strings.ToLower(k)) || strings.Contains(strings.ToLower(k), "pass") {
			q[k] = []string{"xxxxx"}
		}
	}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return clients.RedactURL(u.String())
}

// isSecret: a flag that holds a secret itself (a file holding one is not).
func isSecret(name string) bool {
	if strings.HasSuffix(name, "-file") {
		return false
	}
	for _, s := range []string{"password", "secret", "token"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}
