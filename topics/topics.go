// Package topics names the Kafka topics of the fallback processor, says how
// each one is created, and creates the missing ones with kadm. It depends on
// nothing of ours.
package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Names are the topic names the processor reads and writes. Every name is
// configurable (see docs/configuration.md); DefaultNames gives the defaults.
type Names struct {
	Requests    string // send and cancel requests (in, key = request_id)
	DLR         string // delivery reports (in, key = attempt reference)
	Events      string // analytics events (out, key = request_id)
	DLQ         string // dead letters (out)
	Flows       string // stored flow definitions (compacted, key = flow_id)
	Senders     string // the catalog's senders (compacted, key = <channel>/<id>)
	Templates   string // the catalog's templates (compacted, key = <channel>/<name>)
	FlowHistory string // every version of every stored flow (compacted, key = <flow_id>/<version>)
	SendsPrefix string // send commands go to SendsPrefix + channel (out, key = attempt id)
}

// DefaultNames returns the default topic names.
func DefaultNames() Names {
	return Names{
		Requests:    "fallback.requests",
		DLR:         "fallback.dlr",
		Events:      "fallback.events",
		DLQ:         "fallback.dlq",
		Flows:       "fallback.flows",
		Senders:     "fallback.senders",
		Templates:   "fallback.templates",
		FlowHistory: "fallback.flows.history",
		SendsPrefix: "fallback.sends.",
	}
}

// Sends returns the topic of a channel's send commands, e.g.
// "fallback.sends.sms". A new channel needs no code here, only its name.
func (n Names) Sends(channel string) string { return n.SendsPrefix + channel }

// WithPrefix returns the names with p in front of every one (the sends
// prefix included). Tests sharing a broker use it to get their own topics.
func (n Names) WithPrefix(p string) Names {
	return Names{
		Requests:    p + n.Requests,
		DLR:         p + n.DLR,
		Events:      p + n.Events,
		DLQ:         p + n.DLQ,
		Flows:       p + n.Flows,
		Senders:     p + n.Senders,
		Templates:   p + n.Templates,
		FlowHistory: p + n.FlowHistory,
		SendsPrefix: p + n.SendsPrefix,
	}
}

// All returns every topic name for the given channels: the eight fixed
// topics, then one sends topic per channel, in the order given.
func (n Names) All(channels []string) []string {
	all := []string{n.Requests, n.DLR, n.Events, n.DLQ, n.Flows, n.Senders, n.Templates, n.FlowHistory}
	for _, c := range channels {
		all = append(all, n.Sends(c))
	}
	return all
}

// Validate checks that every name is a legal Kafka topic name and that no
// two roles share a topic (an events topic equal to the DLQ, or a sends
// topic equal to the requests topic, would mix record types on one topic).
// Run it on configuration before connecting: Kafka only reports a bad name
// when the topic is used.
func (n Names) Validate(channels []string) error {
	if n.SendsPrefix == "" {
		// Without a prefix a channel named like another topic would collide
		// with it, and the sends topics would have bare channel names.
		return errors.New("topics: empty sends prefix")
	}
	seen := map[string]bool{}
	for _, name := range n.All(channels) {
		if err := validName(name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("topics: %q is used for two roles", name)
		}
		seen[name] = true
	}
	return nil
}

// validName applies Kafka's topic name rules: 1 to 249 characters of
// [a-zA-Z0-9._-], not "." or "..".
func validName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("topics: invalid topic name %q", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("topics: topic name %q is longer than 249 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topics: topic name %q has the character %q (allowed: a-z A-Z 0-9 . _ -)", name, r)
		}
	}
	return nil
}

// Spec says how to create one topic. Partitions and Replication of -1 mean
// the broker's defaults (Kafka 2.4+).
type Spec struct {
	Name        string
	Partitions  int32
	Replication int16
	Configs     map[string]*string // topic-level configs; nil: broker defaults
}

// Topic configs set by Specs.
const (
	// DLQRetention is how long dead letters are kept: 30 days, so that a bad
	// record found after a long weekend or a holiday can still be inspected
	// and replayed. The DLQ only holds bad records, so the volume stays
	// small unless something is badly broken, in which case the data is the
	// evidence you want.
	DLQRetention = "2592000000" // ms

	// DLQMaxMessageBytes lets a dead letter wrap a source record of the
	// Kafka default size (about 1 MiB) plus its error text and headers. With
	// the broker default (1 MiB) for the DLQ too, a dead letter for a record
	// near that size would be refused, and a record that cannot be dead-
	// lettered stops the pipeline. It is above schemas.MaxDeadLetterBytes
	// (4 MiB) plus headroom for key, headers and batch overhead. The
	// producer writing dead letters must allow records this big too (kgo's
	// ProducerBatchMaxBytes), or truncate what it wraps.
	DLQMaxMessageBytes = "5242880" // 5 MiB
)

// Specs returns the creation specs of every topic for the given channels,
// in the order of Names.All.
//
// Trade-offs:
//   - Requests, DLR, sends and events keep the broker's retention and
//     cleanup (delete). Operators tune retention per site: requests and DLRs
//     must be kept longer than the longest processor outage to be survived
//     (the processor catches up from its committed offsets), and events as
//     long as analytics consumers may lag.
//   - Every topic gets the same partition count. Requests and DLRs are
//     consumed by one group, so their partitions bound the processor's
//     parallelism; sends and events partitions bound their consumers'.
//   - Flows is compacted: it is the table of stored flow definitions (key =
//     flow_id, null value = deleted), which every instance reads in full at
//     start; with delete cleanup, definitions would vanish after the
//     retention and new requests referencing them would be rejected. It
//     gets the same partition count as the others: the table is read whole
//     by every instance, so partitions do not limit anything, and one
//     partition per key keeps each definition's updates in order.
//   - Senders and Templates, the catalog, are compacted for the same
//     reason (key = <channel>/<id> or <channel>/<name>): every instance
//     reads them whole into memory, and an entry must outlive any retention.
//   - FlowHistory is compacted too, but keyed <flow_id>/<version>: every
//     version of every flow ever written stays (compaction keeps the last
//     record per key, and each version has its own key), so the console can
//     show a flow's history and diffs after compaction has dropped the old
//     versions from Flows. The cost is that it only grows: one record per
//     flow change, kept forever, unless a tombstone deletes a version
//     (deleting a flow from Flows leaves its history). Flow changes are
//     rare and definitions small, so this stays small next to the inputs.
//     Delete cleanup with a retention would bound it but lose the history
//     of flows that have not changed for that long. The processor does not
//     read it (a request names a flow in Flows); the tools that write a
//     flow to Flows write the same record here, under its version's key.
//     A flow's versions land on any partition: the version in the key
//     orders them.
//   - DLQ keeps records for DLQRetention and allows DLQMaxMessageBytes.
//   - Requests and DLR take the broker's clock as the record time
//     (message.timestamp.type=LogAppendTime). The processor's deadlines wait
//     until every input partition is read past them, and it reads "past" from
//     record timestamps: append times only grow along a partition and come
//     from a few broker clocks, where CreateTime comes from every producer's
//     clock, in any order. See docs/delivery-guarantees.md.
func Specs(n Names, channels []string, partitions int32, replication int16) []Spec {
	plain := func(name string) Spec {
		return Spec{Name: name, Partitions: partitions, Replication: replication}
	}
	input := func(name string) Spec {
		return Spec{Name: name, Partitions: partitions, Replication: replication, Configs: map[string]*string{
			"message.timestamp.type": kadm.StringPtr("LogAppendTime"),
		}}
	}
	compacted := func(name string) Spec {
		return Spec{Name: name, Partitions: partitions, Replication: replication, Configs: map[string]*string{
			"cleanup.policy": kadm.StringPtr("compact"),
		}}
	}
	specs := []Spec{
		input(n.Requests),
		input(n.DLR),
		plain(n.Events),
		{Name: n.DLQ, Partitions: partitions, Replication: replication, Configs: map[string]*string{
			"retention.ms":      kadm.StringPtr(DLQRetention),
			"max.message.bytes": kadm.StringPtr(DLQMaxMessageBytes),
		}},
		compacted(n.Flows),
		compacted(n.Senders),
		compacted(n.Templates),
		compacted(n.FlowHistory),
	}
	for _, c := range channels {
		specs = append(specs, plain(n.Sends(c)))
	}
	return specs
}

// Missing returns the names, among the given ones, of the topics that do
// not exist, in the order given.
func Missing(ctx context.Context, adm *kadm.Client, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	details, err := listFresh(ctx, adm, names)
	if err != nil {
		return nil, fmt.Errorf("topics: list %s: %w", strings.Join(names, ", "), err)
	}
	var missing []string
	for _, name := range names {
		d, ok := details[name]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		case d.Err != nil:
			return nil, fmt.Errorf("topics: describe %s: %w", name, d.Err)
		}
	}
	return missing, nil
}

// listFresh describes topics with a metadata request that bypasses kgo's
// metadata cache. Plain adm.ListTopics answers from a cache up to
// MetadataMinAge (5s) old, so right after a Create it still reports the new
// topics as unknown. kadm skips the cache when authorized operations are
// requested (kadm.WithAuthorizedOps); that is the only public switch, and
// asking for the operations costs nothing. TestMissingIsFresh fails if a kadm
// upgrade changes this.
//
// kadm's metadata request does not allow auto-creation, so asking never
// creates a topic with broker defaults (a non-compacted flows topic).
func listFresh(ctx context.Context, adm *kadm.Client, names []string) (kadm.TopicDetails, error) {
	return adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
}

// Create creates the topics of specs that do not exist yet and leaves the
// others alone (it never changes an existing topic's partitions or
// configs; see CheckConfigs). A topic created concurrently by someone else
// ("already exists") counts as success, so several instances may start at
// once. Asking first means a deployment without the right to create topics
// works as long as they exist. The error names the topic that failed.
func Create(ctx context.Context, adm *kadm.Client, specs []Spec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	missing, err := Missing(ctx, adm, names)
	if err != nil {
		return err
	}
	for _, s := range specs {
		if !slices.Contains(missing, s.Name) {
			continue
		}
		// One request per topic: each spec may have its own configs, and
		// kadm's CreateTopics applies one set to every topic of a request.
		// Startup creates a handful of topics once; the round trips do not
		// matter.
		resp, err := adm.CreateTopic(ctx, s.Partitions, s.Replication, s.Configs, s.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			if resp.ErrMessage != "" {
				return fmt.Errorf("topics: create %s: %w (%s)", s.Name, err, resp.ErrMessage)
			}
			return fmt.Errorf("topics: create %s: %w", s.Name, err)
		}
		// Several specs may name one topic (a bad configuration); create it
		// once.
		missing = slices.DeleteFunc(missing, func(m string) bool { return m == s.Name })
	}
	return nil
}

// ConfigMismatch is a topic config whose value differs from its Spec.
type ConfigMismatch struct {
	Topic, Key string
	Want, Got  string // Got is "" when the config has no value
}

func (m ConfigMismatch) String() string {
	return fmt.Sprintf("%s: %s is %q, want %q", m.Topic, m.Key, m.Got, m.Want)
}

// CheckConfigs compares the configs of existing topics with their specs and
// returns the differences (Create does not alter topics that already
// exist). A flows topic that is not compacted loses definitions; the caller
// decides whether a mismatch is a warning or fatal. Topics that do not
// exist are an error.
func CheckConfigs(ctx context.Context, adm *kadm.Client, specs []Spec) ([]ConfigMismatch, error) {
	var names []string
	for _, s := range specs {
		if len(s.Configs) > 0 && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	described, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: describe configs of %s: %w", strings.Join(names, ", "), err)
	}
	byTopic := map[string]kadm.ResourceConfig{}
	for _, rc := range described {
		byTopic[rc.Name] = rc
	}
	var mismatches []ConfigMismatch
	for _, s := range specs {
		if len(s.Configs) == 0 {
			continue
		}
		rc, ok := byTopic[s.Name]
		if !ok {
			return nil, fmt.Errorf("topics: describe configs of %s: not in the response", s.Name)
		}
		if rc.Err != nil {
			return nil, fmt.Errorf("topics: describe configs of %s: %w", s.Name, rc.Err)
		}
		got := map[string]string{}
		for _, c := range rc.Configs {
			if c.Value != nil {
				got[c.Key] = *c.Value
			}
		}
		keys := make([]string, 0, len(s.Configs))
		for k := range s.Configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			want := s.Configs[k]
			if want == nil {
				continue
			}
			if g := got[k]; !configEqual(k, g, *want) {
				mismatches = append(mismatches, ConfigMismatch{Topic: s.Name, Key: k, Want: *want, Got: g})
			}
		}
	}
	return mismatches, nil
}

// configEqual compares config values; cleanup.policy is a list whose order
// does not matter ("compact,delete" == "delete,compact").
func configEqual(key, got, want string) bool {
	if got == want {
		return true
	}
	if key != "cleanup.policy" {
		return false
	}
	set := func(v string) []string {
		parts := strings.Split(v, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		slices.Sort(parts)
		return parts
	}
	return slices.Equal(set(got), set(want))
}
