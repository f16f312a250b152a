package console

import (
	"context"
	"html/template"
	"time"

	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/internal/flowstory"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The console's view of the rest of the system: three small interfaces it
// defines, so that tests use in-memory fakes and `fallback console` wires
// the real ones (configstore.Store, the Redis flow story, the outcome
// aggregates of fallback.events, internal/outcomes).

// Store is the configuration: stored flows, senders and templates. The
// reads are of in-memory tables (cheap, called on every page); the writes
// go to the compacted topics and return the record as written.
type Store interface {
	// Flows is the current version of every stored flow, in any order.
	Flows() []schemas.FlowDefinition
	// Lookup is a flow's current version.
	Lookup(flowID string) (schemas.FlowDefinition, bool)
	// History is every version of a flow the store still knows (a
	// compacted topic may have dropped old ones), in any order.
	History(flowID string) []schemas.FlowDefinition
	Senders() []schemas.Sender
	Templates() []schemas.Template
	// Sender, Template and Empty: the catalog the rules check steps
	// against (flow.Validator.Catalog).
	flow.Catalog

	// PutFlow checks def as its Status says (a draft or published) and
	// writes it as the flow's next version, recording by and the time. The
	// console passes Version 0: the store numbers versions. It refuses a
	// title another flow has. A refusal that is (or wraps) a
	// *flow.Rejection, or has a Field method, is shown next to its field.
	PutFlow(ctx context.Context, def schemas.FlowDefinition, by string) (schemas.FlowDefinition, error)
	// Unpublish writes the current version as the next one, a draft,
	// checking nothing; changed is false for a draft (nothing written).
	Unpublish(ctx context.Context, flowID, by string) (def schemas.FlowDefinition, changed bool, err error)
	// DeleteFlow writes the flow's tombstone, recording by.
	DeleteFlow(ctx context.Context, flowID, by string) error
	PutSender(ctx context.Context, s schemas.Sender, by string) (schemas.Sender, error)
	PutTemplate(ctx context.Context, t schemas.Template, by string) (schemas.Template, error)
}

// configstore.Store is the Store `fallback console` wires.
var _ Store = (*configstore.Store)(nil)

// Stories tells what happened to one flow: what `fallback flow` prints,
// as internal/flowstory tells it (flowstory.Load with the state store).
type Stories interface {
	// Story is the flow of a request id under opt; found is false when the
	// state store does not know it (never started, or forgotten). The
	// console asks with Reveal false always and ShowParams for an admin
	// only, and masks and hides again itself.
	Story(ctx context.Context, requestID string, opt flowstory.Options) (story flowstory.Story, found bool, err error)
}

// Rejections, when configured, let the lookup say why a request started
// no flow (its REQUEST_REJECTED, as internal/outcomes remembers it).
type Rejections interface {
	Rejected(requestID string) (reason string, at time.Time, found bool)
}

// Outcomes are the rolling aggregates of fallback.events the outcome
// pages show, over a window that ends now (the pages ask for an hour and
// a day).
type Outcomes interface {
	// Summary counts the flows started from one stored flow; flowID "" is
	// the flows whose requests carried their steps inline.
	Summary(flowID string, window time.Duration) OutcomeSummary
	// Total counts every flow.
	Total(window time.Duration) OutcomeSummary
	// Charts draws s as SVG charts (title names them; several on a page
	// need distinct titles). The console puts them in a <figure> next to a
	// table of s, so they need not be read alone. The page's Content-
	// Security-Policy allows no inline style: use presentation attributes
	// (fill="..."), not style="..." or <style>.
	Charts(title string, s OutcomeSummary) template.HTML
}

// OutcomeSummary counts what the flows of a window did, by the time each
// event happened.
type OutcomeSummary struct {
	Started int // FLOW_STARTED
	Closed  int // FLOW_CLOSED
	// DeliveredFirst: closed DELIVERED or READ by the first step;
	// DeliveredAfterFallback: by a later one.
	DeliveredFirst, DeliveredAfterFallback int
	Failed, Expired, Cancelled             int
	// Fallbacks by reason: the step before failed, or its delay ran out.
	FallbacksOnFailure, FallbacksOnTimeout int
	// PaidDuplicates: a second channel delivered what another had
	// (MULTI_CHANNEL_DELIVERY): the business paid twice.
	PaidDuplicates int
	// TimeToOutcome counts closed flows by the time from request to
	// outcome, in buckets in increasing order.
	TimeToOutcome []OutcomeBucket
}

// OutcomeBucket counts the closed flows that took less than UpTo (and at
// least the bucket before's). UpTo 0 is the last bucket: the rest.
type OutcomeBucket struct {
	UpTo  time.Duration
	Count int
}
