package schemas

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets feed arbitrary bytes to Decode. Properties:
//   - no panic, no runaway allocation (the fuzzer's memory limit catches it);
//   - when Decode accepts x, Encode accepts the value and decoding that
//     encoding gives the same value: decode(encode(decode(x))) == decode(x).
//     (Bytes are not compared: the same value has several encodings, e.g.
//     map order, block splits, non-minimal varints.)
//
// Seeds: valid encodings of the test samples (f.Add) plus the hand-made
// files under testdata/fuzz/<FuzzName>/.
//
// Run one for a while with e.g.
//
//	go test -run '^$' -fuzz '^FuzzDecodeSendRequest$' -fuzztime 60s ./schemas/

func FuzzDecodeSendRequest(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.SendRequest, fullSendRequest(), SendRequest{},
		SendRequest{RequestID: "r", Kind: KindCancel, Steps: []Step{}})
}

func FuzzDecodeDeliveryReport(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.DeliveryReport, fullDeliveryReport(), DeliveryReport{},
		DeliveryReport{AttemptID: "a/0", Channel: "sms", Status: "DELIVRD", ReportedAt: lastInstant})
}

func FuzzDecodeFlowDefinition(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.FlowDefinition, fullFlowDefinition(), FlowDefinition{},
		FlowDefinition{FlowID: "f", Version: -1, Steps: []Step{{}}, Title: "\x00"})
}

// The processor reads the three records above and the catalog (Sender and
// Template, below); the others are read by whoever consumes its outputs
// (provider adapters, analytics, operators replaying dead letters), with the
// same codecs. FlowEvent covers the nested FlowSummary and StepSummary;
// SendRequest and FlowDefinition cover Step.

func FuzzDecodeChannelSend(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.ChannelSend, fullChannelSend(), ChannelSend{})
}

func FuzzDecodeFlowEvent(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.FlowEvent, fullFlowEvent(), FlowEvent{},
		FlowEvent{EventID: "e", Type: "FLOW_CLOSED", Summary: &FlowSummary{Steps: []StepSummary{{}, fullStepSummary()}}},
		FlowEvent{EventID: "e", Type: "FLOW_STARTED", FlowID: "otp", FlowVersion: math.MinInt64})
}

func FuzzDecodeDeadLetter(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.DeadLetter, fullDeadLetter(), DeadLetter{}, DeadLetter{Key: []byte{}, Value: []byte{}})
}

// The catalog: every instance reads the senders and templates topics whole.

func FuzzDecodeSender(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.Sender, fullSender(), Sender{})
}

func FuzzDecodeTemplate(f *testing.F) {
	cs := testCodecs(f)
	fuzzDecode(f, cs.Template, fullTemplate(), Template{}, Template{Channel: "rcs", Name: "n", ProviderTemplateID: "p", ChangedAt: lastInstant})
}

func fuzzDecode[T any](f *testing.F, c *Codec[T], seeds ...T) {
	for _, s := range seeds {
		b, err := c.Encode(s)
		if err != nil {
			f.Fatalf("seed: %v", err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := c.Decode(in)
		if err != nil {
			return
		}
		enc, err := c.Encode(v)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", v, err)
		}
		again, err := c.Decode(enc)
		if err != nil {
			t.Fatalf("cannot decode our own encoding of %+v: %v", v, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("unstable round trip:\n first %+v\nsecond %+v", v, again)
		}
	})
}

// TestFuzzCorpusExpectations pins what each hand-made corpus file is for, so
// that a seed cannot silently stop exercising its path (nil: must decode).
func TestFuzzCorpusExpectations(t *testing.T) {
	cs := testCodecs(t)
	decoders := map[string]func([]byte) error{
		"FuzzDecodeSendRequest":    func(b []byte) error { _, err := cs.SendRequest.Decode(b); return err },
		"FuzzDecodeDeliveryReport": func(b []byte) error { _, err := cs.DeliveryReport.Decode(b); return err },
		"FuzzDecodeFlowDefinition": func(b []byte) error { _, err := cs.FlowDefinition.Decode(b); return err },
		"FuzzDecodeChannelSend":    func(b []byte) error { _, err := cs.ChannelSend.Decode(b); return err },
		"FuzzDecodeFlowEvent":      func(b []byte) error { _, err := cs.FlowEvent.Decode(b); return err },
		"FuzzDecodeDeadLetter":     func(b []byte) error { _, err := cs.DeadLetter.Decode(b); return err },
	}
	decodeFrom := map[string]func([]byte) error{
		"FuzzDecodeSendRequest":    func(b []byte) error { _, err := cs.SendRequest.DecodeFrom("", b); return err },
		"FuzzDecodeFlowDefinition": func(b []byte) error { _, err := cs.FlowDefinition.DecodeFrom("", b); return err },
		"FuzzDecodeDeliveryReport": func(b []byte) error { _, err := cs.DeliveryReport.DecodeFrom("", b); return err },
		"FuzzDecodeChannelSend":    func(b []byte) error { _, err := cs.ChannelSend.DecodeFrom("", b); return err },
		"FuzzDecodeFlowEvent":      func(b []byte) error { _, err := cs.FlowEvent.DecodeFrom("", b); return err },
	}
	want := map[string]error{
		"FuzzDecodeSendRequest/invalid_utf8":                     ErrMalformed,
		"FuzzDecodeSendRequest/params_count_huge":                ErrTruncated,
		"FuzzDecodeSendRequest/params_two_blocks":                nil,
		"FuzzDecodeSendRequest/steps_count_maxint32":             ErrTruncated,
		"FuzzDecodeSendRequest/steps_negative_count_huge_size":   ErrTruncated,
		"FuzzDecodeSendRequest/truncated":                        ErrTruncated,
		"FuzzDecodeSendRequest/step_variables_duplicate_key":     ErrMalformed,
		"FuzzDecodeSendRequest/step_failure_codes_two_blocks":    nil,
		"FuzzDecodeSendRequest/step_failure_codes_invalid_utf8":  ErrMalformed,
		"FuzzDecodeSendRequest/schema_v2_record":                 ErrMalformed, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeDeliveryReport/empty_string_branch":           nil,
		"FuzzDecodeDeliveryReport/non_minimal_varints":           nil,
		"FuzzDecodeDeliveryReport/timestamp_last_valid":          nil,
		"FuzzDecodeDeliveryReport/timestamp_max":                 ErrMalformed,
		"FuzzDecodeDeliveryReport/trailing_byte":                 ErrTrailingBytes,
		"FuzzDecodeDeliveryReport/union_branch_7":                ErrMalformed,
		"FuzzDecodeDeliveryReport/schema_v1_record":              ErrTruncated, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeDeliveryReport/price_set":                     nil,
		"FuzzDecodeFlowDefinition/delay_overflows_int32":         ErrMalformed,
		"FuzzDecodeFlowDefinition/steps_count_huge":              ErrTruncated,
		"FuzzDecodeFlowDefinition/steps_negative_count":          nil,
		"FuzzDecodeFlowDefinition/version_min_int64":             nil,
		"FuzzDecodeFlowDefinition/schema_v1_record":              ErrTruncated, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeFlowDefinition/changed_at_year_10000":         ErrMalformed,
		"FuzzDecodeFlowDefinition/step_fixed_text_duplicate_key": ErrMalformed,
		"FuzzDecodeChannelSend/step_negative":                    nil,
		"FuzzDecodeChannelSend/params_duplicate_key":             ErrMalformed,
		"FuzzDecodeChannelSend/deadline_year_10000":              ErrMalformed,
		"FuzzDecodeChannelSend/truncated":                        ErrTruncated,
		"FuzzDecodeChannelSend/schema_v1_record":                 ErrTruncated, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeChannelSend/template_params_invalid_utf8":     ErrMalformed,
		"FuzzDecodeChannelSend/template_params_two_blocks":       nil,
		"FuzzDecodeFlowEvent/summary_null":                       nil,
		"FuzzDecodeFlowEvent/summary_branch_2":                   ErrMalformed,
		"FuzzDecodeFlowEvent/summary_steps_count_huge":           ErrTruncated,
		"FuzzDecodeFlowEvent/boolean_2":                          ErrMalformed,
		"FuzzDecodeFlowEvent/deadline_forced_2":                  ErrMalformed,
		"FuzzDecodeFlowEvent/metadata_count_huge":                ErrTruncated,
		"FuzzDecodeFlowEvent/schema_v1_record":                   ErrTruncated, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeFlowEvent/schema_v2_record":                   ErrTruncated, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeFlowEvent/schema_v3_record":                   ErrTruncated, // Decode is strict; DecodeFrom reads it
		"FuzzDecodeFlowEvent/wasted_set":                         nil,
		"FuzzDecodeFlowEvent/flow_ref_set":                       nil,
		"FuzzDecodeFlowEvent/flow_version_zero_not_null":         nil, // reads as 0, written back as null
		"FuzzDecodeFlowEvent/flow_version_branch_2":              ErrMalformed,
		"FuzzDecodeFlowEvent/flow_id_invalid_utf8":               ErrMalformed,
		"FuzzDecodeDeadLetter/key_null_value_empty":              nil,
		"FuzzDecodeDeadLetter/value_length_huge":                 ErrTruncated,
		"FuzzDecodeDeadLetter/error_invalid_utf8":                ErrMalformed,
		"FuzzDecodeDeadLetter/partition_overflows_int32":         ErrMalformed,
	}
	// The decode targets' seeds only: FuzzFastEncodeMatchesGoavro's inputs
	// are field values, and a kept one is a plain regression input.
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d corpus files, %d expectations", len(files), len(want))
	}
	for _, file := range files {
		key := filepath.Base(filepath.Dir(file)) + "/" + filepath.Base(file)
		wantErr, ok := want[key]
		if !ok {
			t.Errorf("%s: no expectation", key)
			continue
		}
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// The corpus format is "go test fuzz v1" and one []byte("...") line.
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
			!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: unexpected corpus format", key)
		}
		b, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		err = decoders[filepath.Base(filepath.Dir(file))]([]byte(b))
		if (wantErr == nil) != (err == nil) || (wantErr != nil && !errors.Is(err, wantErr)) {
			t.Errorf("%s: err = %v, want %v", key, err, wantErr)
		}
		// A record of an earlier schema version, which Decode refuses,
		// reads with DecodeFrom (no fingerprint header: every version).
		if strings.HasPrefix(filepath.Base(file), "schema_v") {
			if err := decodeFrom[filepath.Base(filepath.Dir(file))]([]byte(b)); err != nil {
				t.Errorf("%s: DecodeFrom: %v", key, err)
			}
		}
	}
}
