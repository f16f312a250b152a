package integration

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// lockedBuffer is a log sink the processor's goroutines share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsMaskPersonalData runs flows through every path that logs, with the
// processor at debug level, and checks that no recipient number and no
// template parameter value reaches the log, while request ids do: a
// delivered flow with an unknown provider status and a failure fallback, a
// timeout fallback to expiry, a request rejected for its recipient, dead
// letters (undecodable requests and DLRs), and a DLR for an unknown attempt.
func TestLogsMaskPersonalData(t *testing.T) {
	h := newHarness(t)
	logs := &lockedBuffer{}
	h.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	h.start(nil)

	const (
		phone     = "+4917712398765"
		badPhone  = "+49-177-123-98765"
		code      = "771993"
		name      = "Zebulon-Quartz"
		otherCode = "553311"
	)
	secrets := []string{phone, strings.TrimPrefix(phone, "+"), "17712398765", badPhone, code, name, otherCode}
	req := func(id, recipient string, params map[string]string) schemas.SendRequest {
		r := otp(id)
		r.Recipient, r.Params = recipient, params
		return r
	}

	// Delivered after an unknown status and a failure fallback.
	h.request(req("mask-ok", phone, map[string]string{"code": code, "name": name}))
	h.waitSend("mask-ok/0")
	h.status("mask-ok/0", "SOMETHING_ODD")
	h.status("mask-ok/0", "failed")
	h.waitSend("mask-ok/1")
	h.status("mask-ok/1", "DELIVRD")

	// Timeout fallback, then expiry (the sweeper's path).
	h.request(req("mask-to", phone, map[string]string{"code": code}))
	h.waitSend("mask-to/0")
	h.advance(30 * time.Second)
	h.waitSend("mask-to/1")
	h.advance(60 * time.Second)

	// Rejected: a malformed recipient, with parameters.
	h.request(req("mask-bad", badPhone, map[string]string{"code": otherCode, "name": name}))
	// Rejected: a parameter value too long (the value must not be quoted back).
	h.request(req("mask-big", phone, map[string]string{"code": strings.Repeat(code, 200)}))

	// Dead letters: bytes that are no SendRequest but carry the data, a
	// truncated request, a DLR without ids.
	h.produce(h.names.Requests, "mask-junk", []byte("\x02\x04junk "+phone+" "+code+" "+name))
	full, err := h.codecs.SendRequest.Encode(req("mask-cut", phone, map[string]string{"code": code, "name": name}))
	if err != nil {
		t.Fatal(err)
	}
	h.produce(h.names.Requests, "mask-cut", full[:len(full)-12])
	h.dlr(schemas.DeliveryReport{ProviderMessageID: "", Channel: "sms", Status: "delivered", ErrorCode: phone})
	// A DLR for an attempt nobody knows.
	h.dlr(schemas.DeliveryReport{AttemptID: "mask-none/0", Channel: "sms", Status: "delivered"})

	h.waitClosed("mask-ok")
	h.waitClosed("mask-to")
	h.eventually("both rejections", func() bool {
		return len(h.out.eventsOf("mask-bad", flow.EventRequestRejected)) == 1 &&
			len(h.out.eventsOf("mask-big", flow.EventRequestRejected)) == 1
	})
	h.eventually("dead letters", func() bool { return len(h.out.deadLetters()) >= 5 })
	h.eventually("discard", func() bool { return len(h.out.eventsOf("mask-none", flow.EventDLRDiscarded)) == 1 })
	h.settle()

	out := logs.String()
	t.Logf("processor log (%d lines):\n%s", strings.Count(out, "\n"), out)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log holds %q", s)
		}
	}
	for _, id := range []string{"mask-ok", "mask-bad", "mask-big"} {
		if !strings.Contains(out, "request_id="+id) {
			t.Errorf("the log does not name request %s", id)
		}
	}
	for _, what := range []string{"request rejected", "dead letter", "unknown provider status"} {
		if !strings.Contains(out, what) {
			t.Errorf("the log has no %q line: the path was not exercised", what)
		}
	}
}
