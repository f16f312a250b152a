package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
)

// Fixtures of TestFlowCommandEndToEnd: a flow as the processor stores it.
// The story itself is tested in internal/flowstory, with the same flow.

// The person's number, an OTP code and a metadata value: none of them may
// come out unless asked for.
const (
	storyRecipient = "+4915112345678"
	storyOTP       = "482913"
	storyTenant    = "acme-tenant-7"
)

var storyT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// storySteps is WhatsApp for 30 s, then SMS for 60 s.
func storySteps() []flow.StepDef {
	return []flow.StepDef{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	}
}

// storyStarted is a flow of the stored definition otp v3 that the
// processor started 120 ms after its request, as Redis holds it.
func storyStarted(t *testing.T) *flow.State {
	t.Helper()
	st, out := flow.Apply(nil, flow.Start{
		Pos:       flow.Position{Source: flow.SourceRequests, Partition: 3, Offset: 41},
		RequestID: "r1", Recipient: storyRecipient,
		Params:      map[string]string{"code": storyOTP, "lang": "de"},
		Metadata:    map[string]string{"tenant": storyTenant},
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		FlowID:      "otp", FlowVersion: 3, Steps: storySteps(), RequestedAt: storyT0,
	}, storyT0.Add(120*time.Millisecond))
	if !out.Changed {
		t.Fatal("start did not create a flow")
	}
	return st
}

// storyApply applies in at t0+after, failing the test if nothing changed.
func storyApply(t *testing.T, st *flow.State, in flow.Input, after time.Duration) *flow.State {
	t.Helper()
	next, out := flow.Apply(st, in, storyT0.Add(after))
	if !out.Changed {
		t.Fatalf("%T changed nothing", in)
	}
	return next
}

// storyDLR is a report for step k of r1, read at DLR partition 0 offset off.
func storyDLR(k int, status string, kind flow.StatusKind, off int64, at time.Duration) flow.Report {
	return flow.Report{Pos: flow.Position{Source: flow.SourceDLR, Partition: 0, Offset: off},
		RequestID: "r1", AttemptID: flow.AttemptID("r1", k), Step: k, Status: status, Kind: kind,
		ReportedAt: storyT0.Add(at)}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
