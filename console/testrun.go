package console

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The test run: the stored flow's current version through the processor's
// own state machine (flow.Rehearse) against a provider story per step,
// picked on the page. It shows what would be sent, on which channel, when,
// every event, and the outcome. Nothing is sent and nothing is stored, so
// a viewer may run it too.

var storyChoices = []option{
	{Value: flow.StoryDelivered, Label: "delivered"},
	{Value: flow.StoryRead, Label: "read"},
	{Value: flow.StoryFailed, Label: "failed"},
	{Value: flow.StorySilent, Label: "silent (no report)"},
}

// maxStoryAfter bounds a story's DLR time: past the longest delay it can
// only be too late.
const maxStoryAfter = 3600

type testRunView struct {
	FlowID       string
	Name         string
	URL          string
	Version      int64
	Status       string
	SampleParams string
	Steps        []storyStepView
	Ran          bool
	Result       *rehearsalView
	Errs         map[string][]string
	Outcomes     bool // the outcome pages are configured
}

type storyStepView struct {
	Index     int
	Label     string
	Channel   string
	Delay     int32
	Stories   []option
	After     string
	ErrorCode string
}

type rehearsalView struct {
	Sends         []sendRow
	Events        []eventRow
	Outcome       string
	TimeToOutcome string
}

type sendRow struct {
	At        string // offset from the start
	Step      int32
	Channel   string
	From      string
	Template  string
	Reason    string
	AttemptID string
	Message   string // the template filled, when the catalog holds it
}

type eventRow struct {
	At, Type, Step, Channel, Reason, Status, Outcome string
}

func (s *Server) testRunPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := s.store.Lookup(id)
	if !ok {
		s.notFound(w, r, id)
		return
	}
	q := r.URL.Query()
	view := testRunView{FlowID: id, Name: cmp.Or(d.Title, d.FlowID), URL: flowURL(id), Version: d.Version, Status: flowStatus(d),
		SampleParams: q.Get("params"), Ran: q.Get("run") != "", Errs: map[string][]string{}, Outcomes: s.outcomes != nil}
	var errs []fieldError
	resolved, rej := s.draftRules().ValidateSteps(d.Steps)
	if rej != nil {
		errs = append(errs, fieldError{Message: "This version does not pass the rules, so it cannot run: " + rej.Error()})
	}
	stories := make([]flow.StepStory, len(d.Steps))
	channels := s.flowChannels(d.Steps)
	for i, st := range d.Steps {
		sv := storyStepView{Index: i, Label: stepLabel(i), Channel: channels[i], Delay: st.DelaySeconds,
			After: cmp.Or(q.Get(fmt.Sprintf("after%d", i)), "2"), ErrorCode: q.Get(fmt.Sprintf("code%d", i))}
		picked := cmp.Or(q.Get(fmt.Sprintf("story%d", i)), defaultStory(i, len(d.Steps)))
		for _, c := range storyChoices {
			c.Selected = c.Value == picked
			sv.Stories = append(sv.Stories, c)
		}
		after, err := strconv.Atoi(strings.TrimSpace(sv.After))
		if err != nil || after < 0 || after > maxStoryAfter {
			e := fieldError{Field: fmt.Sprintf("after%d", i), ID: fmt.Sprintf("after-%d", i),
				Message: fmt.Sprintf("step %d: the report's time %q is not a whole number of seconds from 0 to %d", i, clipText(sv.After), maxStoryAfter)}
			errs = append(errs, e)
			view.Errs[e.ID] = append(view.Errs[e.ID], e.Message)
		}
		stories[i] = flow.StepStory{Outcome: picked, After: time.Duration(after) * time.Second, ErrorCode: strings.TrimSpace(sv.ErrorCode)}
		view.Steps = append(view.Steps, sv)
	}
	status := http.StatusOK
	if view.Ran && len(errs) == 0 {
		result, err := s.rehearse(d, resolved, stories, sampleParams(view.SampleParams))
		if err != nil {
			errs = append(errs, fieldError{Message: "The test run failed: " + err.Error()})
		} else {
			view.Result = result
		}
	}
	if view.Ran && len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	}
	s.render(w, r, status, "testrun", pageData{Title: "Test run of flow " + view.Name, Section: "flows", Errors: errs, Data: view})
}

// defaultStory: every step but the last is silent, the last delivered:
// the flow goes down the whole chain.
func defaultStory(i, n int) string {
	if i == n-1 {
		return flow.StoryDelivered
	}
	return flow.StorySilent
}

func (s *Server) rehearse(d schemas.FlowDefinition, steps []flow.StepDef, stories []flow.StepStory, samples map[string]string) (*rehearsalView, error) {
	params := maps.Clone(samples)
	for _, st := range steps {
		for _, a := range st.Args {
			if _, given := params[a.Param]; !a.Fixed && !given {
				params[a.Param] = "[" + a.Param + "]"
			}
		}
	}
	start := flow.Start{RequestID: "test-run", Recipient: "+10000000000", Params: params, FlowID: d.FlowID, FlowVersion: d.Version, Steps: steps}
	reh, err := flow.Rehearse(s.rules.Channels, start, stories)
	if err != nil {
		return nil, err
	}
	epoch := flow.RehearsalEpoch()
	out := &rehearsalView{Outcome: reh.Outcome, TimeToOutcome: durationText(reh.TimeToOutcome)}
	for _, snd := range reh.Sends {
		out.Sends = append(out.Sends, sendRow{At: offsetText(snd.SentAt.Sub(epoch)), Step: snd.Step, Channel: snd.Channel, From: snd.From,
			Template: snd.Template, Reason: snd.Reason, AttemptID: snd.AttemptID, Message: s.sentText(snd)})
	}
	for _, ev := range reh.Events {
		row := eventRow{At: offsetText(ev.OccurredAt.Sub(epoch)), Type: ev.Type, Channel: ev.Channel, Reason: ev.Reason,
			Status: ev.Status, Outcome: ev.Outcome, Step: "-"}
		if ev.Step != nil {
			row.Step = strconv.Itoa(int(*ev.Step))
		}
		out.Events = append(out.Events, row)
	}
	return out, nil
}

// sentText is a send's message: its template filled with the send's
// template params, in the template's order.
func (s *Server) sentText(snd schemas.ChannelSend) string {
	t, ok := s.store.Template(snd.Channel, snd.Template)
	if !ok {
		return ""
	}
	names, err := flow.Placeholders(t.Body)
	if err != nil || len(names) != len(snd.TemplateParams) {
		return t.Body
	}
	values := make(map[string]string, len(names))
	for i, n := range names {
		values[n] = snd.TemplateParams[i]
	}
	text, _ := flow.Render(t.Body, values)
	return text
}

// offsetText is a time from the start of the run: "+0s", "+1m30s".
func offsetText(d time.Duration) string { return "+" + d.String() }
