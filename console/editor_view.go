package console

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// What the editor page shows of a form: per step the choices the catalog
// allows (From: the channel's active senders; Template: its approved
// templates of an allowed category), the mapping rows of the template's
// placeholders, and the message as it would be sent.

type editorView struct {
	New       bool
	ReadOnly  bool   // a viewer sees the flow, cannot change it
	ActionURL string // where the form posts
	FlowID    string
	Title     string
	URL       string // the stored flow's page, "" when new
	// Stored is the current stored version; nil for a new flow.
	Stored       *schemas.FlowDefinition
	BaseVersion  int64
	SampleParams string
	Steps        []stepView
	MaxSteps     int
	CanAdd       bool
	CanRemove    bool
	CatalogEmpty bool
	// Errs are the messages next to each input, by its id.
	Errs       map[string][]string
	Outcomes   *outcomesPanel
	OutcomesOn bool // the outcome pages are configured
}

type stepView struct {
	Index    int
	Name     string // "steps[1]": the prefix of its inputs' names
	ID       string // "steps-1": the prefix of its inputs' ids
	Label    string // "first channel", "second channel", ...
	Channel  string
	Default  string // ChannelDefault, carried to the next render
	Channels []option

	From        string
	FromOptions []option
	FromFree    bool // the catalog is empty: a text input, nothing to choose from

	Template        string
	TemplateOptions []option
	// FromUsable and TemplateUsable count the real choices among the
	// options (which may also hold a placeholder or the step's own
	// unusable choice): none says where to add one.
	FromUsable, TemplateUsable int
	TemplateFree               bool // the catalog is empty: a text input
	// Category is asked only for a template the catalog does not hold, on
	// a channel that allows only some categories (WhatsApp).
	AskCategory     bool
	CategoryOptions []option

	Delay              string
	DelayAuto          string // stepForm.DelayAuto, kept through the form
	MinDelay, MaxDelay int32
	SuccessOptions     []option
	FailureCodes       string
	Mapping            []mappingView
	Preview            *previewView
	Errs               map[string][]string
	ReadOnly           bool
	CanRemove          bool
}

type option struct {
	Value, Label string
	Selected     bool
}

type mappingView struct {
	Index       int
	Placeholder string
	Fixed       bool
	Value       string
	Hint        string
}

var ordinals = []string{"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"}

func stepLabel(i int) string {
	if i < len(ordinals) {
		return ordinals[i] + " channel"
	}
	return fmt.Sprintf("channel %d", i+1)
}

// editorView builds the page of a form; errs are the messages by input id.
func (s *Server) editorView(f flowForm, stored *schemas.FlowDefinition, errs map[string][]string, readOnly bool) editorView {
	samples := sampleParams(f.SampleParams)
	v := editorView{New: stored == nil, ReadOnly: readOnly, FlowID: f.FlowID, Title: f.Title, Stored: stored,
		BaseVersion: f.BaseVersion, SampleParams: f.SampleParams, MaxSteps: s.rules.Limits.MaxSteps,
		CanAdd: len(f.Steps) < s.rules.Limits.MaxSteps, CanRemove: len(f.Steps) > 2, CatalogEmpty: s.store.Empty(), Errs: errs,
		OutcomesOn: s.outcomes != nil}
	v.ActionURL = "/flows/new"
	if stored != nil {
		v.ActionURL, v.URL = flowURL(stored.FlowID), flowURL(stored.FlowID)
	}
	for i, sf := range f.Steps {
		sv := s.stepView(i, sf, samples, errs, readOnly)
		sv.CanRemove = v.CanRemove
		v.Steps = append(v.Steps, sv)
	}
	return v
}

func (s *Server) stepView(i int, sf stepForm, samples map[string]string, errs map[string][]string, readOnly bool) stepView {
	spec, known := s.rules.Channels[sf.Channel]
	sv := stepView{Index: i, Name: fmt.Sprintf("steps[%d]", i), ID: fmt.Sprintf("steps-%d", i), Label: stepLabel(i),
		Channel: sf.Channel, Default: sf.ChannelDefault, From: sf.From, Template: sf.Template, Delay: sf.Delay, DelayAuto: sf.DelayAuto,
		MinDelay: s.rules.Limits.MinDelaySeconds, MaxDelay: s.rules.Limits.MaxDelaySeconds, FailureCodes: sf.FailureCodes,
		Errs: errs, ReadOnly: readOnly}
	if !known {
		sv.Channels = append(sv.Channels, option{Value: "", Label: "Choose a channel", Selected: true})
	}
	for _, name := range s.rules.Channels.Names() {
		sv.Channels = append(sv.Channels, option{Value: name, Label: channelLabel(name), Selected: name == sf.Channel})
	}

	// From: the channel's active senders. One the step names that is not
	// among them (disabled, unknown) stays selectable, marked, so the
	// form does not change it behind the person's back; publishing says
	// what is wrong with it.
	for _, snd := range s.sendersOf(sf.Channel) {
		sv.FromOptions = append(sv.FromOptions, option{Value: snd.ID, Label: senderLabel(snd), Selected: snd.ID == sf.From})
	}
	sv.FromUsable = len(sv.FromOptions)
	// With an empty catalog nothing checks senders and templates (auto
	// mode is off): they are typed in.
	catalogEmpty := s.store.Empty()
	sv.FromFree = catalogEmpty
	if !sv.FromFree {
		sv.FromOptions = keepChosen(sv.FromOptions, sf.From, "not an active sender of "+sf.Channel)
	}

	// Template: the channel's approved templates of a category a step may
	// use, approved for the chosen sender or for every sender.
	var chosen *schemas.Template
	for _, t := range s.templatesOf(sf.Channel, sf.From) {
		sv.TemplateOptions = append(sv.TemplateOptions, option{Value: t.Name, Label: templateLabel(t), Selected: t.Name == sf.Template})
	}
	sv.TemplateUsable = len(sv.TemplateOptions)
	sv.TemplateFree = catalogEmpty
	if !sv.TemplateFree {
		sv.TemplateOptions = keepChosen(sv.TemplateOptions, sf.Template, "not usable on "+sf.Channel)
	}
	if t, ok := s.store.Template(sf.Channel, sf.Template); ok && sf.Template != "" {
		chosen = &t
	}
	if chosen == nil && len(spec.TemplateCategories) > 0 {
		sv.AskCategory = true
		sv.CategoryOptions = []option{{Value: "", Label: "Choose a category", Selected: sf.TemplateCategory == ""}}
		for _, c := range spec.TemplateCategories {
			sv.CategoryOptions = append(sv.CategoryOptions, option{Value: c, Label: c, Selected: c == sf.TemplateCategory})
		}
	}

	sv.SuccessOptions = []option{{Value: flow.SuccessOnDelivered, Label: "delivered", Selected: sf.SuccessOn != flow.SuccessOnRead}}
	if spec.HasReadReceipts || sf.SuccessOn == flow.SuccessOnRead {
		sv.SuccessOptions = append(sv.SuccessOptions, option{Value: flow.SuccessOnRead, Label: "read (read receipt)", Selected: sf.SuccessOn == flow.SuccessOnRead})
	}

	sv.Mapping = mappingRows(sf.Mapping, chosen)
	if chosen != nil {
		sv.Preview = s.preview(sf, *chosen, samples)
	}
	return sv
}

// mappingRows are the rows of a step's mapping: one per placeholder of
// its template (keeping what was typed for it), or, without a template
// from the catalog, the rows the step had.
func mappingRows(rows []mappingRow, t *schemas.Template) []mappingView {
	var names []string
	if t != nil {
		names, _ = flow.Placeholders(t.Body)
	} else {
		for _, r := range rows {
			names = append(names, r.Placeholder)
		}
	}
	out := make([]mappingView, 0, len(names))
	for j, ph := range names {
		mv := mappingView{Index: j, Placeholder: ph}
		if k := slices.IndexFunc(rows, func(r mappingRow) bool { return r.Placeholder == ph }); k >= 0 {
			mv.Fixed, mv.Value = rows[k].Fixed, rows[k].Value
		}
		if namesAParam(ph) {
			mv.Hint = fmt.Sprintf("Empty: the request param %q.", ph)
		} else {
			mv.Hint = "Required: a positional placeholder names no param."
		}
		out = append(out, mv)
	}
	return out
}

// keepChosen adds the step's value to the options when the catalog does
// not offer it, so that the form keeps it.
func keepChosen(opts []option, value, why string) []option {
	if value == "" {
		return append([]option{{Value: "", Label: "Choose", Selected: true}}, opts...)
	}
	if slices.ContainsFunc(opts, func(o option) bool { return o.Selected }) {
		return opts
	}
	return append([]option{{Value: value, Label: value + " (" + why + ")", Selected: true}}, opts...)
}

// sendersOf are the active senders of a channel, by id.
func (s *Server) sendersOf(channel string) []schemas.Sender {
	var out []schemas.Sender
	for _, snd := range s.store.Senders() {
		if snd.Channel == channel && snd.Status == schemas.SenderActive {
			out = append(out, snd)
		}
	}
	slices.SortFunc(out, func(a, b schemas.Sender) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// templatesOf are the templates a step on the channel may use with the
// sender: approved, of a category the channel allows in a step, approved
// for every sender or for this one. The same conditions the rules check
// at publish (processor/flow checkCatalog); the list only offers, the
// rules decide.
func (s *Server) templatesOf(channel, from string) []schemas.Template {
	allowed := s.rules.Channels[channel].TemplateCategories
	var out []schemas.Template
	for _, t := range s.store.Templates() {
		if t.Channel != channel || t.Status != schemas.TemplateApproved || (t.Sender != "" && from != "" && t.Sender != from) {
			continue
		}
		if len(allowed) > 0 && !slices.Contains(allowed, strings.ToLower(t.Category)) {
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b schemas.Template) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func channelLabel(name string) string {
	switch name {
	case "sms":
		return "SMS"
	case "whatsapp":
		return "WhatsApp"
	case "rcs":
		return "RCS"
	}
	return name
}

func senderLabel(s schemas.Sender) string {
	if s.Label != "" {
		return s.ID + " (" + s.Label + ")"
	}
	return s.ID
}

func templateLabel(t schemas.Template) string {
	return fmt.Sprintf("%s (%s, %s)", t.Name, cmp.Or(t.Language, "no language"), cmp.Or(t.Category, "no category"))
}
