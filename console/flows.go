package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The flows page: every stored flow, searched and paged. With 10,000 flows
// a page filters and sorts references, then renders only its 50 rows
// (BenchmarkFlowsPage).

const flowsPerPage = 50

type flowsView struct {
	Query            string
	Rows             []flowRow
	Total, Matching  int
	First, Last      int // 1-based positions of the rows shown
	Page, Pages      int
	PrevURL, NextURL string
}

type flowRow struct {
	ID, Title, URL string
	Status         string
	Version        int64
	Channels       string
	ChangedBy      string
	ChangedAt      string
}

func (s *Server) flowsPage(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	all := s.store.Flows()
	matching := make([]*schemas.FlowDefinition, 0, len(all))
	for i := range all {
		if q == "" || containsFold(all[i].FlowID, q) || containsFold(all[i].Title, q) {
			matching = append(matching, &all[i])
		}
	}
	byID := func(a, b *schemas.FlowDefinition) int { return cmp.Compare(a.FlowID, b.FlowID) }
	if !slices.IsSortedFunc(matching, byID) { // the store's table lists them sorted already
		slices.SortFunc(matching, byID)
	}

	view := flowsView{Query: q, Total: len(all), Matching: len(matching)}
	view.Pages = max(1, (len(matching)+flowsPerPage-1)/flowsPerPage)
	view.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	view.Page = min(max(view.Page, 1), view.Pages)
	from := (view.Page - 1) * flowsPerPage
	to := min(from+flowsPerPage, len(matching))
	view.First, view.Last = from+1, to
	for _, d := range matching[from:to] {
		view.Rows = append(view.Rows, flowRow{ID: d.FlowID, Title: d.Title, URL: flowURL(d.FlowID), Status: flowStatus(*d),
			Version: d.Version, Channels: strings.Join(s.flowChannels(d.Steps), " → "), ChangedBy: cmp.Or(d.ChangedBy, "-"),
			ChangedAt: whenPtr(d.ChangedAt)})
	}
	pageURL := func(n int) string {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		v.Set("page", strconv.Itoa(n))
		return "/flows?" + v.Encode()
	}
	if view.Page > 1 {
		view.PrevURL = pageURL(view.Page - 1)
	}
	if view.Page < view.Pages {
		view.NextURL = pageURL(view.Page + 1)
	}
	s.render(w, r, http.StatusOK, "flows", pageData{Title: "Flows", Section: "flows", Data: view})
}

// containsFold reports whether sub is in s, ignoring case, without
// allocating (it runs over every flow of a search).
func containsFold(s, sub string) bool {
	if sub == "" {
		return true
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// flowStatus is a flow's status as requests see it ("" reads as published).
func flowStatus(d schemas.FlowDefinition) string { return configstore.FlowStatus(d) }

// flowChannels are the channels of steps as the processor resolves them
// (a step without a channel takes the other one), with the draft rules
// (the catalog supplies a WhatsApp template's category); the names as
// written, "?" for an empty one, when the steps do not pass them.
func (s *Server) flowChannels(steps []schemas.Step) []string {
	return configstore.FlowChannels(s.draftRules(), steps)
}

// shapeRules are the rules without the catalog (the delay check).
func (s *Server) shapeRules() flow.Validator {
	v := s.rules
	v.Catalog = nil
	return v
}
