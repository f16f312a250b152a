package console

import (
	"cmp"
	"fmt"
	"net/http"

	"github.com/fallbackd/fallback/schemas"
)

// Unpublish and delete act on the stored flow, as `fallback flows
// unpublish ID` and `fallback flows delete ID` do; the editor shows them
// in a section of their own, apart from the form's unsaved edits.
// Unpublishing checks nothing: taking a flow out of service must not
// depend on the rules of the day.

func (s *Server) unpublishFlow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cur, ok := s.store.Lookup(id)
	if !ok {
		s.notFound(w, r, id)
		return
	}
	written, changed, err := s.store.Unpublish(r.Context(), id, visitorOf(r).user.Name)
	switch {
	case err != nil:
		s.renderStatus(w, r, http.StatusBadGateway, storeError(err).Message)
		return
	case !changed:
		s.redirectDone(w, r, flowURL(id), flash{Text: fmt.Sprintf("Flow %s version %d is already a draft; nothing written.", id, cur.Version)})
		return
	}
	s.audit(r, "unpublish", "flow "+id, written.Version)
	s.redirectDone(w, r, flowURL(id), flash{Text: fmt.Sprintf("Unpublished flow %s: version %d is a draft. "+
		"Running flows finish; new requests naming it are rejected flow_not_published.", id, written.Version)})
}

type deleteView struct {
	Flow schemas.FlowDefinition
	Name string
	URL  string
}

// deleteFlowPage asks to confirm: deleting cannot be undone from the
// console (the flow's history goes with it).
func (s *Server) deleteFlowPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cur, ok := s.store.Lookup(id)
	if !ok {
		s.notFound(w, r, id)
		return
	}
	s.render(w, r, http.StatusOK, "delete", pageData{Title: "Delete flow " + cmp.Or(cur.Title, cur.FlowID), Section: "flows",
		Data: deleteView{Flow: cur, Name: cmp.Or(cur.Title, cur.FlowID), URL: flowURL(id)}})
}

func (s *Server) deleteFlow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cur, ok := s.store.Lookup(id)
	if !ok {
		s.notFound(w, r, id)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		http.Redirect(w, r, flowSubURL(id, "delete"), http.StatusSeeOther)
		return
	}
	if err := s.store.DeleteFlow(r.Context(), id, visitorOf(r).user.Name); err != nil {
		s.renderStatus(w, r, http.StatusBadGateway, storeError(err).Message)
		return
	}
	s.audit(r, "delete", "flow "+id, cur.Version)
	s.redirectDone(w, r, "/flows", flash{Text: fmt.Sprintf("Deleted flow %s (was version %d). "+
		"Running flows finish; new requests naming it are rejected flow_id_unknown.", id, cur.Version)})
}
