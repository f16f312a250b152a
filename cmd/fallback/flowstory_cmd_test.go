package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/internal/flowstory/storytest"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// TestFlowCommandEndToEnd writes a flow into an embedded Redis as the
// processor does (through the state store, under the command's own
// settings) and runs `fallback flow` on it: while it waits on step 0,
// after it fell back, and once it closed; then on an unknown request id.
func TestFlowCommandEndToEnd(t *testing.T) {
	r, err := embedded.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The store as `fallback flow --redis URL` builds it: same prefix and
	// shard count, so the flow lands where the command looks.
	fs, c := newFlags("flow", "flow [flags] REQUEST_ID", cliconfig.GroupRedis)
	if err := parseCommon(fs, c, []string{"--redis", r.URL()}); err != nil {
		t.Fatal(err)
	}
	rc, store, err := redisStore(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	version := int64(0)
	write := func(st *flow.State) {
		t.Helper()
		b, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		res, err := store.Apply(ctx, []statestore.Change{{RequestID: st.RequestID, ExpectVersion: version,
			State: b, Deadline: st.DeadlineTime(), Closed: st.Closed}})
		if err != nil || !res[0].Applied {
			t.Fatalf("write the flow at version %d: %v %+v", version, err, res)
		}
		version = res[0].Version
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := flowCommand(ctx, append([]string{"--redis", r.URL()}, args...), &out); err != nil {
			t.Fatalf("flow %v: %v", args, err)
		}
		return out.String()
	}
	noSecrets := func(what, out string, secrets ...string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s: %q printed:\n%s", what, s, out)
			}
		}
	}

	st := storytest.Started(t)
	write(st)
	text := run("r1")
	for _, want := range []string{
		"request    r1 (store version 1)",
		"recipient  +49*********78 (masked; --reveal to show)",
		"params     2 (hidden; --show-params to show)",
		"state      active: waiting on step 0 (whatsapp)",
		"deadline   2026-03-01T10:00:30.120Z",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("active: text lacks %q:\n%s", want, text)
		}
	}
	noSecrets("active", text, storytest.Recipient, storytest.OTP, storytest.Tenant)

	var story map[string]any
	out := run("--json", "--show-params", "r1")
	if err := json.Unmarshal([]byte(out), &story); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if story["state"] != "active" || story["store_version"] != 1.0 || !jsonEqual(story["params"], map[string]string{"code": storytest.OTP, "lang": "de"}) {
		t.Errorf("--json --show-params: state %v, store_version %v, params %v", story["state"], story["store_version"], story["params"])
	}
	noSecrets("--json --show-params", out, storytest.Recipient)
	if out := run("--reveal", "r1"); !strings.Contains(out, "recipient  "+storytest.Recipient+"\n") {
		t.Errorf("--reveal: the number is not shown:\n%s", out)
	}

	st = storytest.Apply(t, st, storytest.DLR(0, "failed", flow.Failed, 17, 2*time.Second), 2100*time.Millisecond)
	write(st)
	text = run("r1")
	for _, want := range []string{"(store version 2)", "state      active: waiting on step 1 (sms)",
		"deadline   2026-03-01T10:01:02.100Z", "  sent     2026-03-01T10:00:02.100Z (failure: step 0 failed)"} {
		if !strings.Contains(text, want) {
			t.Errorf("fell back: text lacks %q:\n%s", want, text)
		}
	}

	st = storytest.Apply(t, st, storytest.DLR(1, "DELIVRD", flow.Delivered, 18, 5*time.Second), 5300*time.Millisecond)
	write(st)
	out = run("--json", "--show-params", "--reveal", "r1")
	story = nil
	if err := json.Unmarshal([]byte(out), &story); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if story["state"] != "closed" || story["tombstone"] != true || story["outcome"] != "DELIVERED" ||
		story["delivered_step"] != 1.0 || story["store_version"] != 3.0 || story["params"] != nil {
		t.Errorf("closed: %s", out)
	}
	if text := run("r1"); !strings.Contains(text, "state      closed (tombstone)") {
		t.Errorf("closed: text:\n%s", text)
	}

	// An unknown flow: an error naming it, as before, and nothing printed.
	var none bytes.Buffer
	err = flowCommand(ctx, []string{"--redis", r.URL(), "nope"}, &none)
	if err == nil || !strings.Contains(err.Error(), `no flow "nope" in Redis`) || none.Len() != 0 {
		t.Errorf("unknown flow: err = %v, printed %q", err, none.String())
	}
	if testing.Short() {
		return
	}
	for _, args := range [][]string{{"flow", "nope"}, {"flow", "--json", "nope"}} {
		stdout, stderr, code := runBin(t, []string{"FALLBACK_REDIS_URL=" + r.URL()}, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, `fallback: no flow "nope" in Redis`) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, the error", args, code, stdout, stderr)
		}
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
