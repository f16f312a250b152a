package flow

import (
	"maps"
	"slices"
)

// The values an event's reason, outcome or status kind can take, for the
// metrics that count events by them: a series per value is served from 0
// at start (processor/metrics.go), so a dashboard shows "none" rather than
// "no data". labels_test.go keeps the lists in step with the code.

// RequestRejectionCodes are the codes a REQUEST_REJECTED can carry: every
// Reject* code of this package but those of catalog entries
// (sender_invalid, template_invalid), which refuse a sender or a template
// being stored, never a request.
func RequestRejectionCodes() []string {
	return []string{
		RejectRequestID, RejectKind, RejectRecipientMissing, RejectRecipient, RejectFlowAndSteps,
		RejectNoFlowNoSteps, RejectUnknownFlow, RejectTooFewSteps, RejectTooManySteps, RejectUnknownChannel,
		RejectDelay, RejectDelayAuto, RejectCategory, RejectFrom, RejectTemplate, RejectSuccessOn, RejectParams, RejectMetadata,
		RejectKey, RejectTooLong, RejectExpired, RejectFuture, RejectExpiresAt, RejectRequestedAtMissing,
		RejectSenderUnknown, RejectSenderDisabled, RejectTemplateUnknown, RejectTemplateNotApproved,
		RejectCategoryMismatch, RejectPlaceholderUnmapped, RejectVariables, RejectParamMissing,
		RejectFailureCodes, RejectChannelAmbiguous, RejectNotPublished,
	}
}

// CatalogWarningCodes are the codes a step's check against the catalog can
// return (checkCatalog): what --catalog=warn counts instead of rejecting.
func CatalogWarningCodes() []string {
	return []string{
		RejectSenderUnknown, RejectSenderDisabled, RejectTemplateUnknown, RejectTemplateNotApproved,
		RejectCategoryMismatch, RejectVariables, RejectPlaceholderUnmapped,
	}
}

// DiscardReasons are the reasons a DLR_DISCARDED carries.
func DiscardReasons() []string {
	return []string{DiscardFlowClosed, DiscardUnknownAttempt, DiscardDuplicate}
}

// SendReasons are why a step is sent: the first step, or a fallback.
func SendReasons() []string { return []string{ReasonInitial, ReasonFailure, ReasonTimeout} }

// FallbackReasons are the reasons a FALLBACK_TRIGGERED carries.
func FallbackReasons() []string { return []string{ReasonFailure, ReasonTimeout} }

// StatusKinds are the normalised kinds a DLR_RECEIVED carries.
func StatusKinds() []string {
	return []string{Intermediate.String(), Delivered.String(), Read.String(), Failed.String()}
}

// Closes are the outcome and delivering channel pairs a FLOW_CLOSED can
// carry in c: DELIVERED by any channel, READ by a channel with a status of
// kind Read, and FAILED, EXPIRED and CANCELLED by none (no step
// delivered). NoChannel stands for none.
func (c Channels) Closes() [][2]string {
	var out [][2]string
	for _, name := range c.Names() {
		out = append(out, [2]string{OutcomeDelivered, name})
		if slices.Contains(slices.Collect(maps.Values(c[name].Statuses)), Read) {
			out = append(out, [2]string{OutcomeRead, name})
		}
	}
	for _, o := range []string{OutcomeFailed, OutcomeExpired, OutcomeCancelled} {
		out = append(out, [2]string{o, NoChannel})
	}
	return out
}

// NoChannel is the delivering channel of a flow no step delivered.
const NoChannel = "none"
