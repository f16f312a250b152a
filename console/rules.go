package console

import (
	"errors"
	"fmt"

	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The checks of `fallback flows put`, `put --publish` and `publish`: the
// functions of package configstore that the CLI calls too (they call the
// processor's rules), so the console refuses what the CLI refuses with the
// same words. They run before a write so that a refusal is shown next to
// its field; the store applies them again when it writes.

// draftCheck is what a draft must pass (configstore.CheckDraft): the
// steps' shape, the catalog filling in what it knows and refusing
// nothing; a draft the rules refuse gets publish's message.
func (s *Server) draftCheck(d schemas.FlowDefinition) *flow.Rejection {
	return configstore.CheckDraft(s.rules, d)
}

// publishCheck is what a published flow must pass
// (configstore.CheckPublish): the catalog as the processor applies it by
// default (auto: enforced once it holds a sender or a template).
func (s *Server) publishCheck(d schemas.FlowDefinition) *flow.Rejection {
	return configstore.CheckPublish(s.rules, d)
}

// draftRules are the rules with the catalog in warn mode: it supplies
// what it knows (a template's category, the placeholders' args) and
// refuses nothing. The test run and the lists resolve steps with them.
func (s *Server) draftRules() flow.Validator {
	v := s.rules
	v.CatalogMode = flow.CatalogWarn
	return v
}

// checkFlowID checks a new flow's id as a request naming it is checked
// (configstore.CheckFlowID).
func (s *Server) checkFlowID(id string) *fieldError {
	err := configstore.CheckFlowID(s.rules, id)
	if err == nil {
		return nil
	}
	var rej *flow.Rejection
	if errors.As(err, &rej) {
		e := rejectionError(rej)
		return &e
	}
	return &fieldError{Field: "flow_id", ID: "flow_id", Message: err.Error()}
}

// titleTaken refuses a title another flow has (configstore.CheckTitle):
// the store refuses it too, this names the field before a write is tried.
func (s *Server) titleTaken(d schemas.FlowDefinition) *fieldError {
	if r := configstore.CheckTitle(s.store.Flows(), d); r != nil {
		e := rejectionError(r)
		return &e
	}
	return nil
}

// rejectionError is a rule's rejection as a form error: the rule's own
// words, next to the input its field names.
func rejectionError(r *flow.Rejection) fieldError {
	return fieldError{Field: r.Field, ID: fieldID(r.Field), Message: r.Error()}
}

// storeError is a write the store refused. An error that names a field
// (a *flow.Rejection, or one with a Field method, such as a taken title)
// is shown next to it.
func storeError(err error) fieldError {
	var rej *flow.Rejection
	if errors.As(err, &rej) {
		return rejectionError(rej)
	}
	var named interface{ Field() string }
	if errors.As(err, &named) {
		return fieldError{Field: named.Field(), ID: fieldID(named.Field()), Message: err.Error()}
	}
	return fieldError{Message: fmt.Sprintf("The change was not stored: %v", err)}
}

// errorsByID groups form errors by the id of their input.
func errorsByID(errs []fieldError) map[string][]string {
	out := map[string][]string{}
	for _, e := range errs {
		if e.ID != "" {
			out[e.ID] = append(out[e.ID], e.Message)
		}
	}
	return out
}
