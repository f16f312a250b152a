package processor

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// TestRegistryCrossCheck checks our Confluent wire format against
// Confluent's own serializers (confluent-kafka's Python AvroDeserializer
// and AvroSerializer, which share no code with ours), both ways, through a
// fake registry served over HTTP: a FLOW_CLOSED the encoder framed is read
// by AvroDeserializer, and a request AvroSerializer wrote is read by the
// consumer's decoder.
func TestRegistryCrossCheck(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	if err := exec.Command("python3", "-c", "import confluent_kafka.schema_registry.avro, fastavro, requests").Run(); err != nil {
		t.Skip("confluent-kafka's Avro serializers not installed: pip install 'confluent-kafka[avro]'")
	}
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	fake, cl := fakeRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := topics.DefaultNames()
	w := newWireFormat(cl, Subjects(names, flow.DefaultChannels().Names(), codecs))
	if err := w.register(ctx); err != nil {
		t.Fatal(err)
	}

	delivered := int32(0)
	ev := schemas.FlowEvent{EventID: "r1:9:closed", RequestID: "r1", Type: flow.EventFlowClosed, Outcome: flow.OutcomeDelivered,
		OccurredAt: t0().Add(3 * time.Second), Metadata: map[string]string{"origin": "go"},
		Summary: &schemas.FlowSummary{Outcome: flow.OutcomeDelivered, DeliveredStep: &delivered, StepsUsed: 1,
			RequestedAt: t0(), StartedAt: t0(), ClosedAt: t0().Add(3 * time.Second), TimeToOutcomeMs: 3000,
			Steps: []schemas.StepSummary{{Step: 0, Channel: "whatsapp", AttemptID: "r1/0", Reason: flow.ReasonInitial, SentAt: t0(), LastStatus: "delivered", Succeeded: true}}}}
	rec, err := (&encoder{codecs: codecs, topics: names, wire: w}).event(ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	eventFile, requestFile := filepath.Join(dir, "event.bin"), filepath.Join(dir, "request.bin")
	if err := os.WriteFile(eventFile, rec.Value, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "python3", filepath.Join("testdata", "registry_crosscheck.py"),
		fake.URL(), "../schemas", names.Events, eventFile, names.Requests, requestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("registry_crosscheck.py: %v\n%s", err, out)
	}

	var got struct {
		EventID    string `json:"event_id"`
		RequestID  string `json:"request_id"`
		Type       string `json:"type"`
		Outcome    string `json:"outcome"`
		StepsUsed  int32  `json:"steps_used"`
		OccurredAt int64  `json:"occurred_at_ms"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("AvroDeserializer's output: %v\n%s", err, out)
	}
	if got.EventID != ev.EventID || got.RequestID != ev.RequestID || got.Type != ev.Type || got.Outcome != ev.Outcome ||
		got.StepsUsed != ev.Summary.StepsUsed || got.OccurredAt != ev.OccurredAt.UnixMilli() {
		t.Fatalf("AvroDeserializer read %+v, want the fields of %+v", got, ev)
	}

	value, err := os.ReadFile(requestFile)
	if err != nil {
		t.Fatal(err)
	}
	req, bad, err := decodeInput(ctx, w, codecs.SendRequest, &kgo.Record{Topic: names.Requests, Value: value})
	if err != nil || bad != nil {
		t.Fatalf("AvroSerializer's request: %v / %v", err, bad)
	}
	if req.RequestID != "py-1" || req.Recipient != "+4915112345678" || len(req.Steps) != 2 || req.Steps[1].Channel != "sms" ||
		req.Params["code"] != "123456" || !req.RequestedAt.Equal(t0()) {
		t.Fatalf("AvroSerializer's request read as %+v", req)
	}
}
