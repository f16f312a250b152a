package console

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The editor's form, as typed: a delay stays "abc" until it is fixed, so a
// refused form comes back as the person left it. Form field names are the
// rules' field names ("steps[1].delay_seconds"), so a Rejection's Field
// says which input it is about.

type flowForm struct {
	FlowID       string
	Title        string
	BaseVersion  int64  // the stored version the editor was opened on (0: new)
	SampleParams string // "name=value" lines, for the previews only
	Steps        []stepForm
}

type stepForm struct {
	Channel string
	// ChannelDefault is the channel this step was given by default at the
	// last render: while the step still has it, it follows the step
	// before (the seed's "the other channel gets selected").
	ChannelDefault string
	// ChannelWas is the channel at the last render: a step whose channel
	// changed since drops its sender, template and mapping (the other
	// channel's would not do).
	ChannelWas       string
	From             string
	Template         string
	TemplateCategory string // only asked for a template the catalog does not hold
	Delay            string
	SuccessOn        string
	FailureCodes     string
	// DelayAuto is the step's delay_auto as "percentile,margin,min,max",
	// "" for a fixed delay. The editor does not set it (the CLI does,
	// docs/auto-delay.md); it keeps it, so that an edit in the console
	// does not make an auto delay fixed.
	DelayAuto string
	Mapping   []mappingRow
}

// formatDelayAuto and parseDelayAuto are stepForm.DelayAuto's form.
func formatDelayAuto(a *schemas.DelayAuto) string {
	if a == nil {
		return ""
	}
	return fmt.Sprintf("%d,%d,%d,%d", a.Percentile, a.MarginSeconds, a.MinSeconds, a.MaxSeconds)
}

func parseDelayAuto(s string) *schemas.DelayAuto {
	var v [4]int32
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return nil
	}
	for i, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil {
			return nil
		}
		v[i] = int32(n)
	}
	return &schemas.DelayAuto{Percentile: v[0], MarginSeconds: v[1], MinSeconds: v[2], MaxSeconds: v[3]}
}

// mappingRow is where one template placeholder's value comes from.
type mappingRow struct {
	Placeholder string
	Fixed       bool   // fixed text, else a request param
	Value       string // the param's name or the text
}

// newStepDelay is a new step's delay: a minute, within every limit.
const newStepDelay = "60"

// newFlowForm is the form of a new flow: WhatsApp, then the other channel.
func (s *Server) newFlowForm() flowForm {
	f := flowForm{Steps: []stepForm{{Channel: "whatsapp", Delay: newStepDelay}}}
	if _, ok := s.rules.Channels["whatsapp"]; !ok {
		f.Steps[0].Channel = s.rules.Channels.Names()[0]
	}
	f.addStep(s.rules.Channels)
	return f
}

// addStep appends a step on the channel after the last one's, if it has
// one (after RCS the person must choose).
func (f *flowForm) addStep(ch flow.Channels) {
	next := ""
	if n := len(f.Steps); n > 0 {
		next = ch[f.Steps[n-1].Channel].DefaultNext
	}
	f.Steps = append(f.Steps, stepForm{Channel: next, ChannelDefault: next, Delay: newStepDelay})
}

// followDefaults gives each step that still has its default channel the
// default after the (possibly changed) step before it, and clears what a
// step whose channel changed had chosen on the old one.
func (f *flowForm) followDefaults(ch flow.Channels) {
	for i := range f.Steps {
		if st := &f.Steps[i]; st.ChannelWas != "" && st.Channel != st.ChannelWas {
			st.From, st.Template, st.TemplateCategory, st.Mapping = "", "", "", nil
		}
	}
	for i := 1; i < len(f.Steps); i++ {
		st := &f.Steps[i]
		def := ch[f.Steps[i-1].Channel].DefaultNext
		if st.Channel == st.ChannelDefault && st.Channel != def {
			if st.Channel != "" || def != "" {
				st.Channel, st.From, st.Template = def, "", ""
			}
		}
		st.ChannelDefault = def
	}
}

// formFromDefinition is the editor's form of a stored flow: a step whose
// channel was left out shows the channel it resolves to.
func (s *Server) formFromDefinition(d schemas.FlowDefinition) flowForm {
	f := flowForm{FlowID: d.FlowID, Title: d.Title, BaseVersion: d.Version}
	prev := ""
	for i, st := range d.Steps {
		ch := strings.ToLower(strings.TrimSpace(st.Channel))
		def := ""
		if i > 0 {
			def = s.rules.Channels[prev].DefaultNext
		}
		if ch == "" {
			ch = def
		}
		sf := stepForm{Channel: ch, ChannelDefault: def, From: st.From, Template: st.Template, TemplateCategory: st.TemplateCategory,
			Delay: strconv.Itoa(int(st.DelaySeconds)), SuccessOn: st.SuccessOn, FailureCodes: strings.Join(st.FailureCodes, ", "),
			DelayAuto: formatDelayAuto(st.DelayAuto)}
		for _, k := range slices.Sorted(maps.Keys(st.Variables)) {
			sf.Mapping = append(sf.Mapping, mappingRow{Placeholder: k, Value: st.Variables[k]})
		}
		for _, k := range slices.Sorted(maps.Keys(st.FixedText)) {
			sf.Mapping = append(sf.Mapping, mappingRow{Placeholder: k, Fixed: true, Value: st.FixedText[k]})
		}
		f.Steps = append(f.Steps, sf)
		prev = ch
	}
	return f
}

// parseFlowForm reads a posted editor form. At most twice the step limit
// is read: more is a forged form, and the rules refuse it anyway.
func parseFlowForm(form url.Values, maxSteps int) flowForm {
	f := flowForm{FlowID: strings.TrimSpace(form.Get("flow_id")), Title: strings.TrimSpace(form.Get("title")),
		SampleParams: form.Get("sample_params")}
	f.BaseVersion, _ = strconv.ParseInt(form.Get("base_version"), 10, 64)
	n, _ := strconv.Atoi(form.Get("step_count"))
	n = min(max(n, 0), 2*maxSteps)
	for i := range n {
		p := fmt.Sprintf("steps[%d].", i)
		st := stepForm{Channel: form.Get(p + "channel"), ChannelDefault: form.Get(p + "channel_default"), ChannelWas: form.Get(p + "channel_was"),
			From: strings.TrimSpace(form.Get(p + "from")), Template: strings.TrimSpace(form.Get(p + "template")),
			TemplateCategory: form.Get(p + "template_category"), Delay: strings.TrimSpace(form.Get(p + "delay_seconds")),
			SuccessOn: form.Get(p + "success_on"), FailureCodes: form.Get(p + "failure_codes"), DelayAuto: form.Get(p + "delay_auto")}
		for j := 0; ; j++ {
			m := fmt.Sprintf("%smap[%d].", p, j)
			ph, ok := form[m+"placeholder"]
			if !ok || j >= 64 {
				break
			}
			st.Mapping = append(st.Mapping, mappingRow{Placeholder: ph[0], Fixed: form.Get(m+"kind") == "fixed", Value: form.Get(m + "value")})
		}
		f.Steps = append(f.Steps, st)
	}
	return f
}

// definition is the flow the form describes, or the form's own errors
// (what is not even a value: a delay that is not a number). The rules
// check the rest.
func (f flowForm) definition() (schemas.FlowDefinition, []fieldError) {
	d := schemas.FlowDefinition{FlowID: f.FlowID, Title: f.Title, Steps: make([]schemas.Step, len(f.Steps))}
	var errs []fieldError
	for i, sf := range f.Steps {
		st := schemas.Step{Channel: sf.Channel, From: sf.From, Template: sf.Template, TemplateCategory: sf.TemplateCategory,
			SuccessOn: sf.SuccessOn, DelayAuto: parseDelayAuto(sf.DelayAuto)}
		if st.SuccessOn == flow.SuccessOnDelivered {
			st.SuccessOn = "" // the default, as a definition leaves it
		}
		field := fmt.Sprintf("steps[%d].delay_seconds", i)
		delay, err := strconv.ParseInt(sf.Delay, 10, 32)
		if err != nil {
			errs = append(errs, fieldError{Field: field, ID: fieldID(field),
				Message: fmt.Sprintf("%s: %q is not a whole number of seconds", field, clipText(sf.Delay))})
		}
		st.DelaySeconds = int32(delay)
		for c := range strings.SplitSeq(sf.FailureCodes, ",") {
			if c = strings.TrimSpace(c); c != "" {
				st.FailureCodes = append(st.FailureCodes, c)
			}
		}
		for _, m := range sf.Mapping {
			switch {
			case m.Fixed:
				st.FixedText = setKey(st.FixedText, m.Placeholder, m.Value)
			case strings.TrimSpace(m.Value) == "":
				// not mapped: the rules say what that means (a named
				// placeholder takes the param of its name, a positional
				// one is refused at publish)
			default:
				st.Variables = setKey(st.Variables, m.Placeholder, strings.TrimSpace(m.Value))
			}
		}
		d.Steps[i] = st
	}
	return d, errs
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// namesAParam: a named placeholder ({{code}}) left unmapped takes the
// param of its name, a positional one ({{1}}) does not. Only for the
// input's hint; the rules decide.
func namesAParam(placeholder string) bool {
	return strings.Trim(placeholder, "0123456789") != ""
}

// sampleParams reads the "name=value" lines of the preview's sample
// params.
func sampleParams(text string) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), "=")
		if k = strings.TrimSpace(k); ok && k != "" {
			out[k] = v
		}
	}
	return out
}
