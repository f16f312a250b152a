package console

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fallbackd/fallback/internal/flowstory"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/schemas"
)

// The flow lookup: a request id, then the flow's story as `fallback flow`
// tells it (internal/flowstory). The recipient is always masked; the
// template params and metadata values show only to an admin (a param is
// often an OTP code), to others only their count and keys.

type lookupView struct {
	RequestID  string
	Configured bool
	Story      *storyView
	// NotFound and Rejected say why there is no story.
	NotFound bool
	Rejected string
}

type storyView struct {
	flowstory.Story
	FlowURL       string
	Recipient     string // masked; "" in a tombstone
	Params        []keyValue
	ParamsNote    string // "2 (hidden)", "dropped (tombstone)"
	Metadata      []keyValue
	MetadataNote  string
	TimeToOutcome string
	Steps         []storyStepRow
}

type keyValue struct{ Key, Value string }

type storyStepRow struct {
	flowstory.Step
	Why string // why it was sent: "failure: step 0 failed"
}

func (s *Server) lookupPage(w http.ResponseWriter, r *http.Request) {
	rid := strings.TrimSpace(r.URL.Query().Get("request_id"))
	view := lookupView{RequestID: rid, Configured: s.stories != nil}
	p := pageData{Title: "Flow lookup", Section: "lookup", Data: &view}
	if rid == "" || s.stories == nil {
		s.render(w, r, http.StatusOK, "lookup", p)
		return
	}
	if rej := s.rules.ValidateCancel(schemas.SendRequest{RequestID: rid}); rej != nil {
		p.Errors = []fieldError{{Field: "request_id", ID: "request_id", Message: rej.Error()}}
		s.render(w, r, http.StatusUnprocessableEntity, "lookup", p)
		return
	}
	admin := visitorOf(r).user.Role.Can(RoleAdmin)
	story, found, err := s.stories.Story(r.Context(), rid, flowstory.Options{ShowParams: admin})
	switch {
	case err != nil:
		p.Errors = []fieldError{{Message: "The flow's state could not be read: " + err.Error()}}
		s.render(w, r, http.StatusBadGateway, "lookup", p)
		return
	case !found:
		view.NotFound = true
		if s.rejections != nil {
			if reason, at, ok := s.rejections.Rejected(rid); ok {
				view.Rejected = fmt.Sprintf("%s (at %s)", reason, when(at))
			}
		}
		s.render(w, r, http.StatusNotFound, "lookup", p)
		return
	}
	view.Story = newStoryView(story, admin)
	p.Title = "Flow of request " + rid
	s.render(w, r, http.StatusOK, "lookup", p)
}

// newStoryView is what the page shows of a story. It masks and hides
// again whatever the Stories implementation filled in.
func newStoryView(st flowstory.Story, admin bool) *storyView {
	v := &storyView{Story: st}
	if st.FlowID != nil {
		v.FlowURL = flowURL(*st.FlowID)
	}
	if st.Recipient != nil {
		v.Recipient = processor.MaskPhone(*st.Recipient)
	}
	v.Params, v.ParamsNote = shownMap(st.Tombstone, st.ParamsCount, st.Params, admin)
	metaCount := len(st.MetadataKeys)
	v.Metadata, v.MetadataNote = shownMap(st.Tombstone, &metaCount, st.Metadata, admin)
	if !admin || st.Metadata == nil {
		for _, k := range st.MetadataKeys {
			v.Metadata = append(v.Metadata, keyValue{Key: k, Value: "hidden"})
		}
	}
	if st.TimeToOutcomeMs != nil {
		v.TimeToOutcome = durationText(time.Duration(*st.TimeToOutcomeMs) * time.Millisecond)
	}
	for _, step := range st.Steps {
		row := storyStepRow{Step: step}
		if step.Reason != nil {
			row.Why = flowstory.ReasonText(*step.Reason, step.Step)
		}
		v.Steps = append(v.Steps, row)
	}
	return v
}

// shownMap is a params or metadata map as the page shows it: the values
// to an admin, else a note with the count.
func shownMap(tombstone bool, count *int, values map[string]string, admin bool) ([]keyValue, string) {
	switch {
	case tombstone || count == nil:
		return nil, "dropped (the flow is closed: its personal data is gone)"
	case *count == 0:
		return nil, "none"
	case !admin || values == nil:
		return nil, fmt.Sprintf("%d (values hidden: only an admin sees them)", *count)
	}
	var out []keyValue
	for _, k := range slices.Sorted(maps.Keys(values)) {
		out = append(out, keyValue{Key: k, Value: values[k]})
	}
	return out, fmt.Sprintf("%d", *count)
}
