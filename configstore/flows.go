package configstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The stored flow definitions: their writes, and the checks the CLI and the
// console apply before them (docs/flows-command.md).

// Headers of a flow's tombstone: it has no value to record who deleted the
// flow and when (RFC 3339).
const (
	HeaderChangedBy = "fallback.changed_by"
	HeaderChangedAt = "fallback.changed_at"
)

// RejectTitleTaken is the code of a flow whose title another stored flow
// has (CheckTitle).
const RejectTitleTaken = "title_taken"

// PutFlow checks def and writes it as the flow's next version, with its
// status (schemas.FlowDraft or FlowPublished: the caller says which). It
// writes the history record (<flow_id>/<version> on Names.FlowHistory,
// unless that is empty) then the flows record, and returns the definition
// as stored.
//
//   - def.Version 0 writes the current version plus 1 (1 for a new flow);
//     a version given must be greater than the current one (*VersionError).
//   - The flow_id is checked as a request naming it would be (CheckFlowID);
//     a draft with CheckDraft, a published flow with CheckPublish; the
//     title (trimmed before it is stored) must be no other flow's
//     (CheckTitle). A refusal is an *InvalidError.
//   - changed_by is by (required: ErrNoChangedBy), changed_at the store's
//     clock; def's own are ignored.
//
// The store must read the flows and the catalog (ReadFlows, ReadCatalog).
func (s *Store) PutFlow(ctx context.Context, def schemas.FlowDefinition, by string) (schemas.FlowDefinition, error) {
	by, err := changedBy(by)
	if err != nil {
		return schemas.FlowDefinition{}, err
	}
	if err := s.needs("PutFlow", ReadFlows|ReadCatalog); err != nil {
		return schemas.FlowDefinition{}, err
	}
	if def.Status != schemas.FlowDraft && def.Status != schemas.FlowPublished {
		return schemas.FlowDefinition{}, invalid(fmt.Errorf("status: %q is not %q or %q", def.Status, schemas.FlowDraft, schemas.FlowPublished))
	}
	if err := CheckFlowID(s.v, def.FlowID); err != nil {
		return schemas.FlowDefinition{}, invalid(err)
	}
	if err := s.catchUp(ctx); err != nil {
		return schemas.FlowDefinition{}, err
	}
	check := s.CheckDraft
	if def.Status == schemas.FlowPublished {
		check = s.CheckPublish
	}
	if r := check(def); r != nil {
		return schemas.FlowDefinition{}, invalid(r)
	}
	def.Title = strings.TrimSpace(def.Title)
	if r := CheckTitle(s.table.Flows(), def); r != nil {
		return schemas.FlowDefinition{}, invalid(r)
	}
	cur, exists := s.table.Lookup(def.FlowID)
	if def.Version, err = nextVersion(fmt.Sprintf("flow %q", def.FlowID), def.Version, cur.Version, exists); err != nil {
		return schemas.FlowDefinition{}, err
	}
	return s.writeFlow(ctx, def, by)
}

// Publish checks the current definition of a flow with CheckPublish and
// writes it as the next version, published. A flow already published is
// left as it is: changed is false and nothing is written. An unknown flow
// is ErrNotFound; a refusal an *InvalidError. The title is not checked
// again: it is the stored one. The store must read the flows and the
// catalog.
func (s *Store) Publish(ctx context.Context, id, by string) (def schemas.FlowDefinition, changed bool, err error) {
	return s.setStatus(ctx, "Publish", ReadFlows|ReadCatalog, id, by, schemas.FlowPublished, s.CheckPublish)
}

// Unpublish writes the current definition of a flow as the next version, a
// draft: flows already running finish, new requests naming it are rejected
// flow_not_published. It checks nothing (taking a flow out of service must
// not depend on the rules of the day). A draft is left as it is: changed is
// false. An unknown flow is ErrNotFound. The store must read the flows.
func (s *Store) Unpublish(ctx context.Context, id, by string) (def schemas.FlowDefinition, changed bool, err error) {
	return s.setStatus(ctx, "Unpublish", ReadFlows, id, by, schemas.FlowDraft, nil)
}

func (s *Store) setStatus(ctx context.Context, op string, needs Read, id, by, status string,
	check func(schemas.FlowDefinition) *flow.Rejection) (schemas.FlowDefinition, bool, error) {
	by, err := changedBy(by)
	if err != nil {
		return schemas.FlowDefinition{}, false, err
	}
	if err := s.needs(op, needs); err != nil {
		return schemas.FlowDefinition{}, false, err
	}
	if err := s.catchUp(ctx); err != nil {
		return schemas.FlowDefinition{}, false, err
	}
	d, ok := s.table.Lookup(id)
	if !ok {
		return schemas.FlowDefinition{}, false, s.unknownFlow(id)
	}
	if FlowStatus(d) == status {
		return d, false, nil
	}
	if check != nil {
		if r := check(d); r != nil {
			return schemas.FlowDefinition{}, false, invalid(r)
		}
	}
	d.Version++
	d.Status = status
	d, err = s.writeFlow(ctx, d, by)
	return d, err == nil, err
}

// DeleteFlow writes a tombstone for the flow: the processor's table (and
// every store's) forgets it, so requests naming it are rejected
// flow_id_unknown, and the next put of the id writes version 1. A tombstone
// has no value, so who deleted it and when go in its headers
// (HeaderChangedBy, HeaderChangedAt). The history is left as it is. An
// unknown flow is ErrNotFound. The store must read the flows.
func (s *Store) DeleteFlow(ctx context.Context, id, by string) error {
	by, err := changedBy(by)
	if err != nil {
		return err
	}
	if err := s.needs("DeleteFlow", ReadFlows); err != nil {
		return err
	}
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	if _, ok := s.table.Lookup(id); !ok {
		return s.unknownFlow(id)
	}
	rec := &kgo.Record{Topic: s.names.Flows, Key: []byte(id), Headers: []kgo.RecordHeader{
		{Key: HeaderChangedBy, Value: []byte(by)},
		{Key: HeaderChangedAt, Value: []byte(s.changedAt().Format(time.RFC3339Nano))},
	}}
	if err := s.client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return &WriteError{Op: "delete flow " + id, Err: err}
	}
	s.readBack(ctx)
	return nil
}

// writeFlow stamps d and writes it: the history record, then the flows
// record.
func (s *Store) writeFlow(ctx context.Context, d schemas.FlowDefinition, by string) (schemas.FlowDefinition, error) {
	at := s.changedAt()
	d.ChangedBy, d.ChangedAt = by, &at
	op := "store flow " + d.FlowID
	if s.names.FlowHistory != "" {
		key := processor.FlowHistoryKey(d.FlowID, d.Version)
		if err := produce(ctx, s, s.names.FlowHistory, key, s.codecs.FlowDefinition, d); err != nil {
			return schemas.FlowDefinition{}, &WriteError{Op: op + " (history " + key + ")", Err: err}
		}
	}
	if err := produce(ctx, s, s.names.Flows, d.FlowID, s.codecs.FlowDefinition, d); err != nil {
		return schemas.FlowDefinition{}, &WriteError{Op: op, Err: err}
	}
	s.readBack(ctx)
	return d, nil
}

func (s *Store) unknownFlow(id string) error {
	return notFoundError{fmt.Sprintf("no stored flow %q on %s", id, s.names.Flows)}
}

// notFoundError says what is not held; it is ErrNotFound.
type notFoundError struct{ msg string }

func (e notFoundError) Error() string        { return e.msg }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// CheckDraft checks def as a draft (the function CheckDraft) with the
// store's rules and the store as the catalog, as PutFlow does.
func (s *Store) CheckDraft(def schemas.FlowDefinition) *flow.Rejection {
	return CheckDraft(s.rules(), def)
}

// CheckPublish checks def as a published flow (the function CheckPublish)
// with the store's rules and the store as the catalog, as PutFlow and
// Publish do.
func (s *Store) CheckPublish(def schemas.FlowDefinition) *flow.Rejection {
	return CheckPublish(s.rules(), def)
}

// rules are the store's validator with the store as its catalog.
func (s *Store) rules() flow.Validator {
	v := s.v
	v.Catalog = s.table
	return v
}

// CheckDraft is what a draft must pass, with v's rules and v.Catalog (its
// CatalogMode is CheckDraft's to set): the steps as an inline request's
// steps (so a bad step is refused with the very message a request carrying
// it gets), the catalog filling in what it knows (a template's category
// where the step leaves it out) and refusing nothing (warn): a draft may
// name a sender or template the catalog does not hold yet. A draft the
// rules refuse gets CheckPublish's rejection, which names the catalog's
// reason when there is one (a step whose category the catalog could not
// supply is refused for that reason, not for the missing category).
func CheckDraft(v flow.Validator, def schemas.FlowDefinition) *flow.Rejection {
	v.CatalogMode = flow.CatalogWarn
	_, r := v.ValidateSteps(def.Steps)
	if r == nil {
		return nil
	}
	if pr := CheckPublish(v, def); pr != nil {
		return pr
	}
	return r
}

// CheckPublish is what a published flow must pass, with v's rules and
// v.Catalog: the steps with the catalog as the processor applies it by
// default (auto: enforced once the catalog holds a sender or a template,
// so with an empty catalog senders and templates are not checked).
func CheckPublish(v flow.Validator, def schemas.FlowDefinition) *flow.Rejection {
	v.CatalogMode = flow.CatalogAuto
	_, r := v.ValidateSteps(def.Steps)
	return r
}

// CheckFlowID checks a flow_id as a request naming the flow has it
// checked: a probe request naming it, with no stored flow to find, must get
// past the flow_id's limits to "unknown flow". The error is a
// *flow.Rejection, or says the flow_id is missing.
func CheckFlowID(v flow.Validator, id string) error {
	if id == "" {
		return errors.New("flow_id: is required")
	}
	probe := schemas.SendRequest{RequestID: "flows-put-check", Kind: schemas.KindSend, Recipient: "+10000000000", FlowID: id}
	if _, r := v.ValidateSend(probe, nil); r != nil && r.Code != flow.RejectUnknownFlow {
		return r
	}
	return nil
}

// CheckTitle is the rule that a flow's title is unique among the stored
// flows: compared trimmed and case-insensitively (Unicode simple folding),
// a title another flow (another flow_id) has is refused, naming that flow
// (RejectTitleTaken). An empty title is no title: any number of flows may
// have none. Both writers (the CLI and the console) go through PutFlow,
// which applies it; the console may call it to check a form before.
func CheckTitle(flows []schemas.FlowDefinition, def schemas.FlowDefinition) *flow.Rejection {
	title := strings.TrimSpace(def.Title)
	if title == "" {
		return nil
	}
	for _, f := range flows {
		if f.FlowID != def.FlowID && strings.EqualFold(strings.TrimSpace(f.Title), title) {
			return &flow.Rejection{Code: RejectTitleTaken, Field: "title",
				Detail: fmt.Sprintf("%q is the title of flow %q", title, f.FlowID)}
		}
	}
	return nil
}

// FlowStatus is a definition's status as requests see it: "" (a record
// written before the field) is published.
func FlowStatus(d schemas.FlowDefinition) string {
	if d.IsPublished() {
		return schemas.FlowPublished
	}
	return d.Status
}

// FlowChannels are the channels of the steps as the processor resolves them
// (an empty channel after the first step is the other channel); the raw
// names, "?" for an empty one, when the steps no longer validate.
func FlowChannels(v flow.Validator, steps []schemas.Step) []string {
	out := make([]string, len(steps))
	if resolved, r := v.ValidateSteps(steps); r == nil {
		for i, s := range resolved {
			out[i] = s.Channel
		}
		return out
	}
	for i, s := range steps {
		out[i] = cmp.Or(s.Channel, "?")
	}
	return out
}
