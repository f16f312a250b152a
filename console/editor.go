package console

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/fallbackd/fallback/schemas"
)

// The editor: /flows/new and /flows/{id}. One form; its buttons post an
// action. Adding or removing a step, or "Update" (the Enter key's
// default), re-renders the form without storing anything; Save draft and
// Publish check it as `fallback flows put` and `put --publish` do and
// write the next version. Unpublish and Delete act on the stored version
// (editor_lifecycle.go).

// newFlowPage is the form of a new flow. A stored flow whose id is "new"
// (its page would be this path) is opened with ?id=new.
func (s *Server) newFlowPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("id") == "new" {
		s.showFlow(w, r, "new")
		return
	}
	if !visitorOf(r).user.Role.Can(RoleEditor) {
		s.renderStatus(w, r, http.StatusForbidden, fmt.Sprintf("Your role (%s) may not create flows.", visitorOf(r).user.Role))
		return
	}
	s.renderEditor(w, r, http.StatusOK, s.newFlowForm(), nil, nil)
}

func (s *Server) flowPage(w http.ResponseWriter, r *http.Request) {
	s.showFlow(w, r, r.PathValue("id"))
}

func (s *Server) showFlow(w http.ResponseWriter, r *http.Request, id string) {
	d, ok := s.store.Lookup(id)
	if !ok {
		s.notFound(w, r, id)
		return
	}
	s.renderEditor(w, r, http.StatusOK, s.formFromDefinition(d), &d, nil)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, id string) {
	s.renderStatus(w, r, http.StatusNotFound, fmt.Sprintf("There is no stored flow %q (it may have been deleted).", clipText(id)))
}

func (s *Server) renderEditor(w http.ResponseWriter, r *http.Request, status int, f flowForm, stored *schemas.FlowDefinition, errs []fieldError) {
	view := s.editorView(f, stored, errorsByID(errs), !visitorOf(r).user.Role.Can(RoleEditor))
	title := "New flow"
	if stored != nil {
		title = "Flow " + cmp.Or(stored.Title, stored.FlowID)
		view.Outcomes = s.outcomesPanel(stored.FlowID)
	}
	s.render(w, r, status, "editor", pageData{Title: title, Section: "flows", Errors: errs, Data: view})
}

func (s *Server) newFlowAction(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("id") == "new" {
		s.editorAction(w, r, "new")
		return
	}
	s.editorAction(w, r, "")
}

func (s *Server) flowAction(w http.ResponseWriter, r *http.Request) {
	s.editorAction(w, r, r.PathValue("id"))
}

// editorAction handles a post of the editor's form; id is the stored
// flow's, "" for a new one.
func (s *Server) editorAction(w http.ResponseWriter, r *http.Request, id string) {
	var stored *schemas.FlowDefinition
	if id != "" {
		d, ok := s.store.Lookup(id)
		if !ok {
			s.notFound(w, r, id)
			return
		}
		stored = &d
	}
	f := parseFlowForm(r.PostForm, s.rules.Limits.MaxSteps)
	if stored != nil {
		f.FlowID = stored.FlowID // a stored flow's id is its page's, not the form's
	}
	f.followDefaults(s.rules.Channels)
	action := r.PostForm.Get("action")
	switch {
	case action == "add_step":
		if len(f.Steps) < s.rules.Limits.MaxSteps {
			f.addStep(s.rules.Channels)
		}
	case strings.HasPrefix(action, "remove_step_"):
		if i, err := strconv.Atoi(strings.TrimPrefix(action, "remove_step_")); err == nil && i >= 0 && i < len(f.Steps) && len(f.Steps) > 2 {
			f.Steps = slices.Delete(f.Steps, i, i+1)
			f.followDefaults(s.rules.Channels)
		}
	case action == "save_draft", action == "publish":
		s.saveFlow(w, r, f, stored, action == "publish")
		return
	}
	s.renderEditor(w, r, http.StatusOK, f, stored, nil)
}

// saveFlow checks the form as `flows put` (a draft) or `put --publish`
// does and writes the next version.
func (s *Server) saveFlow(w http.ResponseWriter, r *http.Request, f flowForm, stored *schemas.FlowDefinition, publish bool) {
	def, errs := f.definition()
	if stored == nil {
		if e := s.checkFlowID(def.FlowID); e != nil {
			errs = append(errs, *e)
		} else if cur, exists := s.store.Lookup(def.FlowID); exists {
			errs = append(errs, fieldError{Field: "flow_id", ID: "flow_id", Message: fmt.Sprintf(
				"flow_id: a flow %q already exists (version %d): open it from the flows list to change it", clipText(def.FlowID), cur.Version)})
		}
	} else if cur, ok := s.store.Lookup(stored.FlowID); ok && cur.Version != f.BaseVersion {
		// Someone saved since this form was opened. Saving again (with the
		// version now current as the base) writes over it, knowingly.
		errs = append(errs, fieldError{Message: fmt.Sprintf("Flow %s changed since you opened it: version %d, by %s at %s. "+
			"Your edits are below; save again to write over that version, or open the flow again to see it.",
			cur.FlowID, cur.Version, cmp.Or(cur.ChangedBy, "someone"), whenPtr(cur.ChangedAt))})
		f.BaseVersion, stored = cur.Version, &cur
	}
	if e := s.titleTaken(def); e != nil {
		errs = append(errs, *e)
	}
	if len(errs) == 0 {
		check := s.draftCheck
		if publish {
			check = s.publishCheck
		}
		if rej := check(def); rej != nil {
			errs = append(errs, rejectionError(rej))
		}
	}
	if len(errs) > 0 {
		s.renderEditor(w, r, http.StatusUnprocessableEntity, f, stored, errs)
		return
	}
	if publish && stored != nil && stored.IsPublished() && s.sameFlow(*stored, def) {
		s.redirectDone(w, r, flowURL(def.FlowID), flash{Text: fmt.Sprintf(
			"Flow %s version %d is already published; nothing written.", def.FlowID, stored.Version)})
		return
	}
	def.Status = schemas.FlowDraft
	action := "save draft"
	if publish {
		def.Status, action = schemas.FlowPublished, "publish"
	}
	user := visitorOf(r).user.Name
	written, err := s.store.PutFlow(r.Context(), def, user)
	if err != nil {
		s.renderEditor(w, r, http.StatusUnprocessableEntity, f, stored, []fieldError{storeError(err)})
		return
	}
	s.audit(r, action, "flow "+written.FlowID, written.Version)
	msgs := []flash{{Text: fmt.Sprintf("Stored flow %s version %d (%s).", written.FlowID, written.Version, flowStatus(written))}}
	if publish {
		msgs[0].Text = fmt.Sprintf("Published flow %s: version %d.", written.FlowID, written.Version)
		if s.store.Empty() {
			msgs = append(msgs, flash{Warn: true, Text: "Senders and templates were not checked: the catalog is empty."})
		}
	} else {
		if stored != nil && stored.IsPublished() {
			msgs = append(msgs, flash{Warn: true, Text: fmt.Sprintf("Flow %s was published (version %d): until you publish it again, "+
				"requests naming it are rejected flow_not_published.", written.FlowID, stored.Version)})
		}
		if pr := s.publishCheck(def); pr != nil {
			msgs = append(msgs, flash{Warn: true, Text: "Publish would refuse this draft now: " + pr.Error()})
		}
	}
	s.redirectDone(w, r, flowURL(written.FlowID), msgs...)
}

// sameFlow reports whether writing d over stored would change nothing
// but the version: the same title, and the same steps as the draft rules
// resolve them (a channel left out or given, "delivered" or "", the
// catalog's category) with the same mapping.
func (s *Server) sameFlow(stored, d schemas.FlowDefinition) bool {
	if stored.Title != d.Title || len(stored.Steps) != len(d.Steps) {
		return false
	}
	a, ra := s.draftRules().ValidateSteps(stored.Steps)
	b, rb := s.draftRules().ValidateSteps(d.Steps)
	if ra != nil || rb != nil || !reflect.DeepEqual(a, b) {
		return false
	}
	for i := range d.Steps {
		if !maps.Equal(stored.Steps[i].Variables, d.Steps[i].Variables) || !maps.Equal(stored.Steps[i].FixedText, d.Steps[i].FixedText) {
			return false
		}
	}
	return true
}
