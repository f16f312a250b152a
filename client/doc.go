// Package client is the Go side of the processor's wire contract
// (schemas/README.md) for the three kinds of neighbours it has:
//
//   - Publisher: platform teams publish send and cancel requests to
//     fallback.requests, keyed by request_id, with the schema headers. A
//     send is checked with the processor's own rules first (Validate), so a
//     request the processor would reject (REQUEST_REJECTED) is refused at the
//     call, with the same code and field name, and never published.
//   - EventConsumer: analytics read fallback.events in a consumer group,
//     decoded, with repeated event ids dropped.
//   - Adapter: provider adapters read fallback.sends.<channel> and publish
//     delivery reports to fallback.dlr, keyed by the attempt id.
//
// Everything the processor writes comes at least once: after a crash an
// instance re-emits what Kafka may already have (same attempt id, same
// event id, same bytes), and a consumer re-reads what it had not committed.
// EventConsumer and Adapter drop the repeats they remember (a bounded set
// per process, see WithDedupeSize) and commit a record only once the caller
// is done with it, so nothing is lost and a repeat is rare; a sink that must
// never see one keys its writes by event_id or attempt_id.
//
// The package imports schemas, topics and processor/flow (for the rules),
// nothing else of the module. docs/client.md has the longer story.
package client
