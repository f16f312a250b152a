package console

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// A flow's history: every version the store still knows with who wrote it
// and when, what changed between two of them (field by field, step by
// step), and restoring one, which writes it as the next version.

type historyView struct {
	FlowID   string
	URL      string
	Exists   bool // the flow has a current version (not deleted)
	Versions []versionRow
	A, B     int64 // the versions compared
	Diff     []diffRow
	CanEdit  bool
	Outcomes bool // the outcome pages are configured
}

type versionRow struct {
	Version   int64
	Title     string
	Status    string
	Steps     int
	Channels  string
	ChangedBy string
	ChangedAt string
	Current   bool
}

// diffRow is one field that differs between the two versions.
type diffRow struct {
	Where string // "flow" or "step 2 (third channel)"
	Field string
	Old   string
	New   string
}

func (s *Server) historyPage(w http.ResponseWriter, r *http.Request) {
	s.renderHistory(w, r, http.StatusOK, r.PathValue("id"), nil)
}

func (s *Server) renderHistory(w http.ResponseWriter, r *http.Request, status int, id string, errs []fieldError) {
	versions := s.versions(id)
	cur, exists := s.store.Lookup(id)
	if len(versions) == 0 && !exists {
		s.notFound(w, r, id)
		return
	}
	view := historyView{FlowID: id, URL: flowURL(id), Exists: exists, CanEdit: visitorOf(r).user.Role.Can(RoleEditor),
		Outcomes: s.outcomes != nil}
	for _, d := range versions {
		view.Versions = append(view.Versions, versionRow{Version: d.Version, Title: d.Title, Status: flowStatus(d), Steps: len(d.Steps),
			Channels: strings.Join(s.flowChannels(d.Steps), " → "), ChangedBy: cmp.Or(d.ChangedBy, "-"), ChangedAt: whenPtr(d.ChangedAt),
			Current: exists && d.Version == cur.Version})
	}
	// Compare the two newest unless the page asks for others.
	q := r.URL.Query()
	view.A, view.B = parseVersion(q.Get("a")), parseVersion(q.Get("b"))
	if view.B == 0 && len(versions) > 0 {
		view.B = versions[0].Version
	}
	if view.A == 0 && len(versions) > 1 {
		view.A = versions[1].Version
	}
	a, okA := findVersion(versions, view.A)
	b, okB := findVersion(versions, view.B)
	if okA && okB {
		view.Diff = s.diffFlows(a, b)
	}
	s.render(w, r, status, "history", pageData{Title: "History of flow " + id, Section: "flows", Errors: errs, Data: view})
}

// versions is the flow's history, newest first.
func (s *Server) versions(id string) []schemas.FlowDefinition {
	vs := slices.Clone(s.store.History(id))
	slices.SortFunc(vs, func(a, b schemas.FlowDefinition) int { return cmp.Compare(b.Version, a.Version) })
	return vs
}

func parseVersion(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func findVersion(vs []schemas.FlowDefinition, v int64) (schemas.FlowDefinition, bool) {
	i := slices.IndexFunc(vs, func(d schemas.FlowDefinition) bool { return d.Version == v })
	if i < 0 {
		return schemas.FlowDefinition{}, false
	}
	return vs[i], true
}

// diffFlows lists what differs from a to b: the flow's own fields, then
// each step's.
func (s *Server) diffFlows(a, b schemas.FlowDefinition) []diffRow {
	var rows []diffRow
	add := func(where, field, old, new string) {
		if old != new {
			rows = append(rows, diffRow{Where: where, Field: field, Old: old, New: new})
		}
	}
	add("flow", "title", a.Title, b.Title)
	add("flow", "status", flowStatus(a), flowStatus(b))
	add("flow", "steps", strconv.Itoa(len(a.Steps)), strconv.Itoa(len(b.Steps)))
	for i := range max(len(a.Steps), len(b.Steps)) {
		fa, fb := stepFields(a.Steps, i), stepFields(b.Steps, i)
		where := fmt.Sprintf("step %d (%s)", i, stepLabel(i))
		for k, name := range stepFieldNames {
			add(where, name, fa[k], fb[k])
		}
	}
	return rows
}

var stepFieldNames = []string{"channel", "from", "template", "template_category", "delay_seconds", "success_on",
	"variables", "fixed_text", "failure_codes"}

// stepFields are step i's fields as text, in stepFieldNames' order; all
// "(no step)" when the version has no step i.
func stepFields(steps []schemas.Step, i int) []string {
	if i >= len(steps) {
		return slices.Repeat([]string{"(no step)"}, len(stepFieldNames))
	}
	st := steps[i]
	return []string{cmp.Or(st.Channel, "(the other channel)"), st.From, st.Template, cmp.Or(st.TemplateCategory, "-"),
		strconv.Itoa(int(st.DelaySeconds)), cmp.Or(st.SuccessOn, flow.SuccessOnDelivered),
		mapText(st.Variables), mapText(st.FixedText), cmp.Or(strings.Join(st.FailureCodes, ", "), "(every failure)")}
}

// mapText is a mapping as sorted "{{key}} = value" pairs.
func mapText(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("{{%s}} = %q", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// restoreFlow writes an earlier version as the next one. It keeps the
// flow's current status, so that rolling back a published flow keeps it
// in service; it is checked as that status requires (publishing: the
// catalog enforced) and refused with the rules' message.
func (s *Server) restoreFlow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	from := parseVersion(r.PostForm.Get("version"))
	old, ok := findVersion(s.versions(id), from)
	if !ok {
		s.renderHistory(w, r, http.StatusUnprocessableEntity, id, []fieldError{{Message: fmt.Sprintf("Flow %s has no version %d to restore.", id, from)}})
		return
	}
	cur, exists := s.store.Lookup(id)
	def := old
	def.Version, def.ChangedBy, def.ChangedAt = 0, "", nil
	def.Status = schemas.FlowDraft
	check := s.draftCheck
	if exists && cur.IsPublished() {
		def.Status, check = schemas.FlowPublished, s.publishCheck
	}
	var errs []fieldError
	if e := s.titleTaken(def); e != nil {
		errs = append(errs, *e)
	} else if rej := check(def); rej != nil {
		errs = append(errs, rejectionError(rej))
	}
	if len(errs) > 0 {
		errs[0].ID = "" // the fields are not on this page
		errs[0].Message = fmt.Sprintf("Version %d cannot be restored as %s: %s", from, def.Status, errs[0].Message)
		s.renderHistory(w, r, http.StatusUnprocessableEntity, id, errs)
		return
	}
	written, err := s.store.PutFlow(r.Context(), def, visitorOf(r).user.Name)
	if err != nil {
		e := storeError(err)
		e.ID = ""
		s.renderHistory(w, r, http.StatusUnprocessableEntity, id, []fieldError{e})
		return
	}
	s.audit(r, "restore", fmt.Sprintf("flow %s from version %d", id, from), written.Version)
	s.redirectDone(w, r, flowSubURL(id, "history"), flash{Text: fmt.Sprintf("Restored version %d of flow %s as version %d (%s).",
		from, id, written.Version, flowStatus(written))})
}
