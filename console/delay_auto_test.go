package console

import (
	"net/url"
	"testing"

	"github.com/fallbackd/fallback/schemas"
)

// TestEditorKeepsDelayAuto: the editor does not set delay_auto, but a step
// that has one keeps it through the form (a hidden field), so that saving
// a flow in the console does not make its auto delay fixed.
func TestEditorKeepsDelayAuto(t *testing.T) {
	a := &schemas.DelayAuto{Percentile: 90, MarginSeconds: 3, MinSeconds: 10, MaxSeconds: 120}
	sf := stepForm{DelayAuto: formatDelayAuto(a), Delay: "30"}
	posted := url.Values{"step_count": {"2"},
		"steps[0].delay_seconds": {sf.Delay}, "steps[0].delay_auto": {sf.DelayAuto},
		"steps[1].delay_seconds": {"60"}}
	d, errs := parseFlowForm(posted, 8).definition()
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := d.Steps[0].DelayAuto; got == nil || *got != *a {
		t.Fatalf("step 0 delay_auto %+v, want %+v", got, a)
	}
	if d.Steps[1].DelayAuto != nil {
		t.Fatalf("step 1 delay_auto %+v, want none", d.Steps[1].DelayAuto)
	}
	for _, bad := range []string{"", "1,2,3", "a,b,c,d"} {
		if parseDelayAuto(bad) != nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
