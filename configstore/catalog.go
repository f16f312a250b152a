package configstore

import (
	"context"
	"fmt"

	"github.com/fallbackd/fallback/schemas"
)

// The catalog's writes (docs/catalog-command.md). There is no delete: a
// sender is disabled, a template set pending or rejected, and stays listed
// with who did it.

// PutSender checks a sender with the processor's rules (ValidateSender) and
// writes it as its next version: sd.Version 0 writes the current version
// plus 1 (1 for a new sender), a version given must be greater than the
// current one. changed_by is by (required), changed_at the store's clock.
// It writes the whole record: a caller that keeps a stored field (the
// label) reads it first (Sender). A refusal is an *InvalidError, a version
// not above the current one a *VersionError. The store must read the
// senders (ReadSenders).
func (s *Store) PutSender(ctx context.Context, sd schemas.Sender, by string) (schemas.Sender, error) {
	by, err := changedBy(by)
	if err != nil {
		return schemas.Sender{}, err
	}
	if err := s.needs("PutSender", ReadSenders); err != nil {
		return schemas.Sender{}, err
	}
	sd.ChangedBy, sd.ChangedAt = by, s.changedAt()
	if r := s.v.ValidateSender(sd); r != nil {
		return schemas.Sender{}, invalid(r)
	}
	if err := s.catchUp(ctx); err != nil {
		return schemas.Sender{}, err
	}
	cur, exists := s.table.Sender(sd.Channel, sd.ID)
	if sd.Version, err = nextVersion(fmt.Sprintf("%s sender %q", sd.Channel, sd.ID), sd.Version, cur.Version, exists); err != nil {
		return schemas.Sender{}, err
	}
	if err := produce(ctx, s, s.names.Senders, sd.Key(), s.codecs.Sender, sd); err != nil {
		return schemas.Sender{}, &WriteError{Op: fmt.Sprintf("store %s sender %s", sd.Channel, sd.ID), Err: err}
	}
	s.readBack(ctx)
	return sd, nil
}

// PutTemplate checks a template with the processor's rules
// (ValidateTemplate) and writes it as its next version, as PutSender does a
// sender. The store must read the templates (ReadTemplates).
func (s *Store) PutTemplate(ctx context.Context, t schemas.Template, by string) (schemas.Template, error) {
	by, err := changedBy(by)
	if err != nil {
		return schemas.Template{}, err
	}
	if err := s.needs("PutTemplate", ReadTemplates); err != nil {
		return schemas.Template{}, err
	}
	t.ChangedBy, t.ChangedAt = by, s.changedAt()
	if r := s.v.ValidateTemplate(t); r != nil {
		return schemas.Template{}, invalid(r)
	}
	if err := s.catchUp(ctx); err != nil {
		return schemas.Template{}, err
	}
	cur, exists := s.table.Template(t.Channel, t.Name)
	if t.Version, err = nextVersion(fmt.Sprintf("%s template %q", t.Channel, t.Name), t.Version, cur.Version, exists); err != nil {
		return schemas.Template{}, err
	}
	if err := produce(ctx, s, s.names.Templates, t.Key(), s.codecs.Template, t); err != nil {
		return schemas.Template{}, &WriteError{Op: fmt.Sprintf("store %s template %s", t.Channel, t.Name), Err: err}
	}
	s.readBack(ctx)
	return t, nil
}
