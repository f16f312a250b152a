package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/fallbackd/fallback/schemas"
)

// TestSchemasRegister registers every topic's subject in a fake registry
// that asks for basic auth: refused without the credentials, and with them
// each subject holds the record's schema under the id printed.
func TestSchemasRegister(t *testing.T) {
	fake := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("key:secret"))))
	t.Cleanup(fake.Close)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var out bytes.Buffer
	args := []string{"register", "--schema-registry", fake.URL(), "--topic-events", "it.events"}
	if err := schemasCommand(ctx, args, &out); err == nil {
		t.Fatalf("registered without credentials:\n%s", out.String())
	}
	out.Reset()
	if err := schemasCommand(ctx, append(args, "--schema-registry-user", "key", "--schema-registry-password-file", pw), &out); err != nil {
		t.Fatal(err)
	}
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := map[string]string{"it.events-value": codecs.FlowEvent.Name(), "fallback.requests-value": codecs.SendRequest.Name(),
		"fallback.dlr-value": codecs.DeliveryReport.Name(), "fallback.sends.sms-value": codecs.ChannelSend.Name(),
		"fallback.flows-value": codecs.FlowDefinition.Name(), "fallback.dlq-value": codecs.DeadLetter.Name()}
	for subject, record := range want {
		held, ok := fake.GetSchema(subject, 1)
		if !ok {
			t.Fatalf("subject %s not registered; output:\n%s", subject, out.String())
		}
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == subject && f[1] == record && f[2] == strconv.Itoa(held.ID) {
				found = true
			}
		}
		if !found {
			t.Fatalf("no line %q %q %d in:\n%s", subject, record, held.ID, out.String())
		}
	}
	if err := schemasCommand(ctx, []string{"register", "--schema-registry", "redis://127.0.0.1:1"}, &out); err == nil ||
		!strings.Contains(err.Error(), "--schema-registry") {
		t.Fatalf("a redis:// registry URL: %v, want an error naming --schema-registry", err)
	}
}
