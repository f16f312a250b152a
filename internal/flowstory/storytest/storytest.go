// Package storytest is one flow, as the processor stores it, for the tests
// of what tells a flow's story (internal/flowstory and `fallback flow`).
package storytest

import (
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
)

// The person's number, an OTP code and a metadata value: none of them may
// come out unless asked for.
const (
	Recipient = "+4915112345678"
	OTP       = "482913"
	Tenant    = "acme-tenant-7"
)

// T0 is when the flow's request was made.
var T0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// Steps is WhatsApp for 30 s, then SMS for 60 s.
func Steps() []flow.StepDef {
	return []flow.StepDef{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	}
}

// Started is request r1's flow of the stored definition otp v3, which the
// processor started 120 ms after its request.
func Started(t testing.TB) *flow.State {
	t.Helper()
	st, out := flow.Apply(nil, flow.Start{
		Pos:       flow.Position{Source: flow.SourceRequests, Partition: 3, Offset: 41},
		RequestID: "r1", Recipient: Recipient,
		Params:      map[string]string{"code": OTP, "lang": "de"},
		Metadata:    map[string]string{"tenant": Tenant},
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		FlowID:      "otp", FlowVersion: 3, Steps: Steps(), RequestedAt: T0,
	}, T0.Add(120*time.Millisecond))
	if !out.Changed {
		t.Fatal("start did not create a flow")
	}
	return st
}

// Apply applies in at T0+after, failing the test if nothing changed.
func Apply(t testing.TB, st *flow.State, in flow.Input, after time.Duration) *flow.State {
	t.Helper()
	next, out := flow.Apply(st, in, T0.Add(after))
	if !out.Changed {
		t.Fatalf("%T changed nothing", in)
	}
	return next
}

// DLR is a report for step k of r1, read at DLR partition 0 offset off.
func DLR(k int, status string, kind flow.StatusKind, off int64, at time.Duration) flow.Report {
	return flow.Report{Pos: flow.Position{Source: flow.SourceDLR, Partition: 0, Offset: off},
		RequestID: "r1", AttemptID: flow.AttemptID("r1", k), Step: k, Status: status, Kind: kind,
		ReportedAt: T0.Add(at)}
}
