package console

import (
	"maps"
	"strings"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The preview is the step's message as a send would carry it: the step is
// resolved by the processor's rules with the catalog enforced (which is
// what works out each placeholder's param or fixed text, flow.Arg), then
// filled with the sample params (flow.StepValues, flow.Render). A step
// the rules cannot resolve yet shows the template's body and why.

type previewView struct {
	Text     string
	Missing  []string // placeholders left without a value
	Note     string   // why the mapping was not applied
	Status   string   // the template's status when it is not approved
	Language string
	Category string
}

func (s *Server) preview(sf stepForm, t schemas.Template, samples map[string]string) *previewView {
	pv := &previewView{Language: t.Language, Category: t.Category}
	if t.Status != schemas.TemplateApproved {
		pv.Status = t.Status
	}
	placeholders, err := flow.Placeholders(t.Body)
	if err != nil {
		pv.Text, pv.Note = t.Body, "the template's body: "+err.Error()
		return pv
	}
	// Only what the message depends on: the delay, success condition and
	// failure codes are checked on the step itself. The step twice makes
	// the two steps a flow needs.
	d, _ := flowForm{Steps: []stepForm{sf}}.definition()
	st := d.Steps[0]
	st.DelaySeconds = s.rules.Limits.MinDelaySeconds
	st.SuccessOn, st.FailureCodes = "", nil
	v := s.rules
	v.CatalogMode = flow.CatalogEnforce
	resolved, r := v.ValidateSteps([]schemas.Step{st, st})
	if r != nil {
		pv.Text, pv.Missing = flow.Render(t.Body, nil)
		pv.Note = strings.TrimPrefix(r.Field, "steps[0].") + ": " + r.Detail
		return pv
	}
	params := maps.Clone(samples)
	for _, a := range resolved[0].Args {
		if _, given := params[a.Param]; !a.Fixed && !given {
			params[a.Param] = "[" + a.Param + "]" // a sample not given shows its param's name
		}
	}
	pv.Text, pv.Missing = flow.Render(t.Body, flow.StepValues(resolved[0], placeholders, params))
	return pv
}
