package clients

import (
	"net/url"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"
)

// SchemaRegistry is how to reach a Confluent Schema Registry: the
// --schema-registry* settings. With no URL the processor writes plain Avro.
type SchemaRegistry struct {
	// URLs are the registry's base URLs, comma-separated (http:// or
	// https://, which uses the system's CAs).
	URLs string
	// User and PasswordFile, read once at start, are HTTP basic auth (a
	// Confluent Cloud API key and secret, for example).
	User         string
	PasswordFile string
}

// Enabled says whether a registry is configured.
func (s SchemaRegistry) Enabled() bool { return strings.TrimSpace(s.URLs) != "" }

// Client builds the registry client; errors name the flag at fault.
func (s SchemaRegistry) Client() (*sr.Client, error) {
	var urls []string
	for _, u := range strings.Split(s.URLs, ",") {
		u = strings.TrimSpace(u)
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return nil, flagError("--schema-registry", "%q is not an http:// or https:// URL", RedactURL(u))
		}
		if parsed.User != nil {
			return nil, flagError("--schema-registry", "%q holds credentials: use --schema-registry-user and --schema-registry-password-file", RedactURL(u))
		}
		urls = append(urls, u)
	}
	opts := []sr.ClientOpt{sr.URLs(urls...), sr.UserAgent("fallback")}
	switch {
	case s.User != "" && s.PasswordFile == "":
		return nil, flagError("--schema-registry-password-file", "is needed with --schema-registry-user")
	case s.User == "" && s.PasswordFile != "":
		return nil, flagError("--schema-registry-user", "is needed with --schema-registry-password-file")
	case s.User != "":
		pw, err := readSecret("--schema-registry-password-file", s.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sr.BasicAuth(s.User, pw))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, flagError("--schema-registry", "%v", err)
	}
	return cl, nil
}
