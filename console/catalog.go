package console

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The catalog pages: senders and templates, as `fallback senders` and
// `fallback templates` keep them. An entry is checked with the
// processor's rules (ValidateSender, ValidateTemplate) before the store is
// called, and refused with their message.

type sendersView struct {
	Senders  []schemas.Sender
	Channels []option
	Form     schemas.Sender
	Errs     map[string][]string
	CanEdit  bool
}

func (s *Server) sendersPage(w http.ResponseWriter, r *http.Request) {
	s.renderSenders(w, r, http.StatusOK, schemas.Sender{Status: schemas.SenderActive}, nil)
}

func (s *Server) renderSenders(w http.ResponseWriter, r *http.Request, status int, form schemas.Sender, errs []fieldError) {
	senders := slices.Clone(s.store.Senders())
	slices.SortFunc(senders, func(a, b schemas.Sender) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.ID, b.ID))
	})
	view := sendersView{Senders: senders, Channels: s.channelOptions(form.Channel), Form: form, Errs: errorsByID(errs),
		CanEdit: visitorOf(r).user.Role.Can(RoleEditor)}
	s.render(w, r, status, "senders", pageData{Title: "Senders", Section: "senders", Errors: errs, Data: view})
}

// addSender writes a sender (new, or the next version of one: its label
// and status as given).
func (s *Server) addSender(w http.ResponseWriter, r *http.Request) {
	user := visitorOf(r).user.Name
	snd := schemas.Sender{Channel: r.PostForm.Get("channel"), ID: strings.TrimSpace(r.PostForm.Get("id")),
		Label: strings.TrimSpace(r.PostForm.Get("label")), Status: cmp.Or(r.PostForm.Get("status"), schemas.SenderActive), ChangedBy: user}
	if rej := s.rules.ValidateSender(snd); rej != nil {
		s.renderSenders(w, r, http.StatusUnprocessableEntity, snd, []fieldError{rejectionError(rej)})
		return
	}
	written, err := s.store.PutSender(r.Context(), snd, user)
	if err != nil {
		s.renderSenders(w, r, http.StatusUnprocessableEntity, snd, []fieldError{storeError(err)})
		return
	}
	s.audit(r, "put sender", written.Channel+" sender "+auditSenderID(written.ID), written.Version)
	s.redirectDone(w, r, "/senders", flash{Text: fmt.Sprintf("Stored %s sender %s version %d (%s).",
		written.Channel, written.ID, written.Version, written.Status)})
}

// disableSender writes the next version of a sender, disabled. There is
// no delete: a disabled sender stays listed with who disabled it.
func (s *Server) disableSender(w http.ResponseWriter, r *http.Request) {
	channel, id := r.PostForm.Get("channel"), r.PostForm.Get("id")
	cur, ok := s.store.Sender(channel, id)
	if !ok {
		s.renderSenders(w, r, http.StatusNotFound, schemas.Sender{Status: schemas.SenderActive},
			[]fieldError{{Message: fmt.Sprintf("There is no %s sender %q.", clipText(channel), clipText(id))}})
		return
	}
	if cur.Status == schemas.SenderDisabled {
		s.redirectDone(w, r, "/senders", flash{Text: fmt.Sprintf("%s sender %s is already disabled (version %d); nothing written.",
			cur.Channel, cur.ID, cur.Version)})
		return
	}
	user := visitorOf(r).user.Name
	next := cur
	next.Status, next.Version, next.ChangedBy = schemas.SenderDisabled, 0, user
	written, err := s.store.PutSender(r.Context(), next, user)
	if err != nil {
		s.renderSenders(w, r, http.StatusUnprocessableEntity, schemas.Sender{Status: schemas.SenderActive}, []fieldError{storeError(err)})
		return
	}
	s.audit(r, "disable sender", written.Channel+" sender "+auditSenderID(written.ID), written.Version)
	s.redirectDone(w, r, "/senders", flash{Text: fmt.Sprintf("Disabled %s sender %s: version %d. Steps that name it are refused from now on.",
		written.Channel, written.ID, written.Version)})
}

type templatesView struct {
	Templates  []templateRow
	Channels   []option
	Statuses   []option
	Categories string // every channel's known categories, for the hint
	Form       schemas.Template
	Errs       map[string][]string
	CanEdit    bool
}

type templateRow struct {
	schemas.Template
	Placeholders string
	PreviewURL   string
}

func (s *Server) templatesPage(w http.ResponseWriter, r *http.Request) {
	s.renderTemplates(w, r, http.StatusOK, schemas.Template{Status: schemas.TemplateApproved}, nil)
}

func (s *Server) renderTemplates(w http.ResponseWriter, r *http.Request, status int, form schemas.Template, errs []fieldError) {
	ts := slices.Clone(s.store.Templates())
	slices.SortFunc(ts, func(a, b schemas.Template) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Name, b.Name))
	})
	view := templatesView{Channels: s.channelOptions(form.Channel), Form: form, Errs: errorsByID(errs),
		CanEdit: visitorOf(r).user.Role.Can(RoleEditor)}
	for _, st := range []string{schemas.TemplateApproved, schemas.TemplatePending, schemas.TemplateRejected} {
		view.Statuses = append(view.Statuses, option{Value: st, Label: st, Selected: st == form.Status})
	}
	var cats []string
	for _, name := range s.rules.Channels.Names() {
		if known := s.rules.Channels[name].KnownCategories; len(known) > 0 {
			cats = append(cats, channelLabel(name)+": "+strings.Join(known, ", "))
		}
	}
	view.Categories = strings.Join(cats, "; ")
	for _, t := range ts {
		names, err := flow.Placeholders(t.Body)
		ph := "{{" + strings.Join(names, "}}, {{") + "}}"
		switch {
		case err != nil:
			ph = "(invalid body)"
		case len(names) == 0:
			ph = "-"
		}
		view.Templates = append(view.Templates, templateRow{Template: t, Placeholders: ph,
			PreviewURL: "/templates/preview?channel=" + urlQuery(t.Channel) + "&name=" + urlQuery(t.Name)})
	}
	s.render(w, r, status, "templates", pageData{Title: "Templates", Section: "templates", Errors: errs, Data: view})
}

func (s *Server) addTemplate(w http.ResponseWriter, r *http.Request) {
	user := visitorOf(r).user.Name
	f := r.PostForm
	t := schemas.Template{Channel: f.Get("channel"), Name: strings.TrimSpace(f.Get("name")), Language: strings.TrimSpace(f.Get("language")),
		Category: strings.ToLower(strings.TrimSpace(f.Get("category"))), Body: strings.ReplaceAll(f.Get("body"), "\r\n", "\n"),
		Status: cmp.Or(f.Get("status"), schemas.TemplateApproved), ProviderTemplateID: strings.TrimSpace(f.Get("provider_template_id")),
		Sender: strings.TrimSpace(f.Get("sender")), ChangedBy: user}
	if rej := s.rules.ValidateTemplate(t); rej != nil {
		s.renderTemplates(w, r, http.StatusUnprocessableEntity, t, []fieldError{rejectionError(rej)})
		return
	}
	written, err := s.store.PutTemplate(r.Context(), t, user)
	if err != nil {
		s.renderTemplates(w, r, http.StatusUnprocessableEntity, t, []fieldError{storeError(err)})
		return
	}
	s.audit(r, "put template", written.Channel+" template "+written.Name, written.Version)
	s.redirectDone(w, r, "/templates", flash{Text: fmt.Sprintf("Stored %s template %s version %d (%s).",
		written.Channel, written.Name, written.Version, written.Status)})
}

type templatePreviewView struct {
	Template     schemas.Template
	Placeholders []string
	SampleParams string
	Text         string
	Missing      []string
}

// templatePreviewPage fills a template with sample params, as `fallback
// templates preview` does: a positional placeholder takes the param of
// its number ("1=123456").
func (s *Server) templatePreviewPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t, ok := s.store.Template(q.Get("channel"), q.Get("name"))
	if !ok {
		s.renderStatus(w, r, http.StatusNotFound, fmt.Sprintf("There is no %s template %q.", clipText(q.Get("channel")), clipText(q.Get("name"))))
		return
	}
	view := templatePreviewView{Template: t, SampleParams: q.Get("params")}
	var errs []fieldError
	names, err := flow.Placeholders(t.Body)
	if err != nil {
		errs = append(errs, fieldError{Message: "template_invalid: body: " + err.Error()})
	}
	view.Placeholders = names
	view.Text, view.Missing = flow.Render(t.Body, sampleParams(view.SampleParams))
	for _, m := range view.Missing {
		errs = append(errs, fieldError{Field: "params", ID: "params",
			Message: fmt.Sprintf("template %s needs %q (add %s=... to the sample params)", t.Name, m, m)})
	}
	if q.Get("params") == "" {
		errs = nil // nothing asked yet: show the body, no complaint
	}
	s.render(w, r, http.StatusOK, "template_preview", pageData{Title: "Preview of template " + t.Name, Section: "templates",
		Errors: errs, Data: view})
}

// channelOptions are the channels for a select, chosen selected.
func (s *Server) channelOptions(chosen string) []option {
	var out []option
	for _, name := range s.rules.Channels.Names() {
		out = append(out, option{Value: name, Label: channelLabel(name), Selected: name == chosen})
	}
	return out
}
