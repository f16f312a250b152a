package console

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// The outcome pages: how flows ended over the last hour or day, for every
// flow or one stored flow, as a table and as the charts Outcomes draws
// (in a <figure>; the table is the charts' text alternative).

var outcomeWindows = []struct {
	Value string
	Label string
	D     time.Duration
}{{"1h", "last hour", time.Hour}, {"24h", "last day", 24 * time.Hour}}

type outcomesView struct {
	Configured bool
	FlowID     string // "" for every flow
	Inline     bool   // the flows whose requests carried their steps
	Scope      string // "every flow", "flow otp"
	Window     string
	Windows    []option
	Table      outcomeTable
	Charts     template.HTML
}

// outcomeTable is an OutcomeSummary as rows for a person.
type outcomeTable struct {
	Caption string
	Rows    []countRow
	Buckets []countRow
}

type countRow struct {
	Label string
	Value int
	// Unknown, when set, is shown instead of Value: the figure is not in
	// the events the console reads.
	Unknown string
}

// startedNotWritten is the "flows started" figure when the window has
// closes and no FLOW_STARTED: the processor runs with --events=lean, which
// does not write it (docs/events.md). A 0 there would be a wrong figure.
const startedNotWritten = "not recorded (--events=lean)"

// outcomesPanel is the flow page's summary: the last hour.
type outcomesPanel struct {
	Table outcomeTable
	Link  string
}

func (s *Server) outcomesPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	view := outcomesView{Configured: s.outcomes != nil, FlowID: strings.TrimSpace(q.Get("flow")), Inline: q.Get("inline") != ""}
	window := outcomeWindows[0]
	for _, ow := range outcomeWindows {
		if ow.Value == q.Get("window") {
			window = ow
		}
		view.Windows = append(view.Windows, option{Value: ow.Value, Label: ow.Label})
	}
	for i := range view.Windows {
		view.Windows[i].Selected = view.Windows[i].Value == window.Value
	}
	view.Window = window.Value
	if view.Configured {
		var sum OutcomeSummary
		switch {
		case view.Inline:
			view.Scope, sum = "flows with inline steps", s.outcomes.Summary("", window.D)
		case view.FlowID != "":
			view.Scope, sum = "flow "+view.FlowID, s.outcomes.Summary(view.FlowID, window.D)
		default:
			view.Scope, sum = "every flow", s.outcomes.Total(window.D)
		}
		view.Table = newOutcomeTable(sum, fmt.Sprintf("Outcomes of %s, %s", view.Scope, window.Label))
		view.Charts = s.outcomes.Charts(view.Table.Caption, sum)
	}
	s.render(w, r, http.StatusOK, "outcomes", pageData{Title: "Outcomes", Section: "outcomes", Data: view})
}

func (s *Server) outcomesPanel(flowID string) *outcomesPanel {
	if s.outcomes == nil {
		return nil
	}
	sum := s.outcomes.Summary(flowID, time.Hour)
	return &outcomesPanel{Table: newOutcomeTable(sum, "Outcomes of this flow, last hour"),
		Link: "/outcomes?flow=" + urlQuery(flowID)}
}

func newOutcomeTable(s OutcomeSummary, caption string) outcomeTable {
	started := countRow{Label: "flows started", Value: s.Started}
	if s.Started == 0 && s.Closed > 0 {
		started.Unknown = startedNotWritten
	}
	t := outcomeTable{Caption: caption, Rows: []countRow{
		started,
		{Label: "flows closed", Value: s.Closed},
		{Label: "delivered on the first channel", Value: s.DeliveredFirst},
		{Label: "delivered after a fallback", Value: s.DeliveredAfterFallback},
		{Label: "failed", Value: s.Failed},
		{Label: "expired", Value: s.Expired},
		{Label: "cancelled", Value: s.Cancelled},
		{Label: "fallbacks on a failure", Value: s.FallbacksOnFailure},
		{Label: "fallbacks on a timeout", Value: s.FallbacksOnTimeout},
		{Label: "paid duplicates (two channels delivered)", Value: s.PaidDuplicates},
	}}
	var prev time.Duration
	for _, b := range s.TimeToOutcome {
		label := fmt.Sprintf("%s to %s", prev, b.UpTo)
		if b.UpTo == 0 {
			label = fmt.Sprintf("%s or more", prev)
		}
		t.Buckets = append(t.Buckets, countRow{Label: label, Value: b.Count})
		prev = b.UpTo
	}
	return t
}
