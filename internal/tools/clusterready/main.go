// clusterready waits until the three-broker Kafka cluster of
// `scripts/services-up.sh --cluster` is usable, which needs more than
// internal/tools/kafkaready's "one broker answers": every broker just
// started must answer on its own port, every broker that is running must be
// registered and unfenced, and (with -isr) every partition must have a leader
// and every live replica back in its ISR, so that a test that kills the
// next broker right after a restart does not fall below min.insync.replicas;
// with -balance, leadership then goes back to the preferred replicas, so the
// cluster is as balanced as before the restart.
// The Maven-resolved Kafka classpath has no admin CLI (TopicCommand lives in
// kafka-tools), hence this.
//
// services-up.sh --cluster builds and runs it:
//
//	go build -o clusterready ./internal/tools/clusterready
//	clusterready -brokers 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 -ids 1,2,3 -coordinator -isr
//
// Exit 0 once everything asked for holds (a summary on stdout unless -q),
// 1 on timeout (what it was still waiting for on stderr), 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094", "comma-separated seed brokers")
	answer := flag.String("answer", "", "comma-separated brokers that must each answer a metadata request on their own address")
	idList := flag.String("ids", "", "comma-separated broker ids that must be registered and unfenced")
	coordinator := flag.Bool("coordinator", false, "also wait for a group coordinator (creates __consumer_offsets)")
	isr := flag.Bool("isr", false, "also wait until every partition has a leader and every live replica is in its ISR")
	balance := flag.Bool("balance", false, "then move leadership back to each partition's preferred replica where it is live")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	interval := flag.Duration("interval", 250*time.Millisecond, "pause between attempts")
	quiet := flag.Bool("q", false, "print nothing on success")
	verbose := flag.Bool("v", false, "say on stderr why each attempt was not ready yet")
	flag.Parse()

	var ids []int32
	for _, s := range split(*idList) {
		id, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			fmt.Fprintf(os.Stderr, "clusterready: bad -ids %q\n", *idList)
			os.Exit(2)
		}
		ids = append(ids, int32(id))
	}
	seeds := split(*brokers)
	start := time.Now()
	deadline := start.Add(*timeout)

	// wait retries check until it returns nil or the deadline passes.
	wait := func(what string, check func(context.Context) error) {
		var err error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), min(5*time.Second, time.Until(deadline)))
			t := time.Now()
			err = check(ctx)
			cancel()
			if err == nil {
				return
			}
			if *verbose {
				fmt.Fprintf(os.Stderr, "clusterready: %s %s: %s: %v\n", time.Since(start).Round(time.Millisecond), what, time.Since(t).Round(time.Millisecond), err)
			}
			if time.Now().Add(*interval).After(deadline) {
				break
			}
			time.Sleep(*interval)
		}
		fmt.Fprintf(os.Stderr, "clusterready: %s: not ready after %s: %v\n", what, *timeout, err)
		os.Exit(1)
	}

	// A fresh client per address and attempt: one that was not listening
	// yet is dialled again, and only that address is asked.
	for _, addr := range split(*answer) {
		wait(addr+" answers", func(ctx context.Context) error {
			return withAdmin(ctx, []string{addr}, func(adm *kadm.Client) error {
				_, err := adm.ListBrokers(ctx)
				return err
			})
		})
	}

	// Every check below asks through a fresh client too: a client caches
	// metadata for MetadataMinAge (5 s), and kadm's broker and topic
	// listings read through that cache, so a long-lived client would see
	// ISRs and leaders seconds late.
	var live kadm.BrokerDetails
	wait("brokers "+*idList+" registered", func(ctx context.Context) error {
		return withAdmin(ctx, seeds, func(adm *kadm.Client) error {
			var err error
			if live, err = adm.ListBrokers(ctx); err != nil {
				return err
			}
			if missing := missingIDs(live, ids); len(missing) > 0 {
				return fmt.Errorf("metadata lists brokers %v, not yet %v", live.NodeIDs(), missing)
			}
			return nil
		})
	})
	tBrokers := time.Since(start)

	if *coordinator {
		wait("group coordinator", func(ctx context.Context) error {
			return withAdmin(ctx, seeds, func(adm *kadm.Client) error {
				return adm.FindGroupCoordinators(ctx, "clusterready-warmup").Error()
			})
		})
	}

	var partitions int
	if *isr {
		wait("partitions in sync", func(ctx context.Context) error {
			return withAdmin(ctx, seeds, func(adm *kadm.Client) error {
				var err error
				partitions, err = inSync(ctx, adm)
				return err
			})
		})
	}

	var moved int
	if *balance {
		wait("preferred leaders", func(ctx context.Context) error {
			return withAdmin(ctx, seeds, func(adm *kadm.Client) error {
				var err error
				moved, err = electPreferred(ctx, adm, moved)
				return err
			})
		})
	}

	if !*quiet {
		var bs []string
		for _, b := range live {
			bs = append(bs, fmt.Sprintf("%d@%s:%d", b.NodeID, b.Host, b.Port))
		}
		fmt.Printf("kafka cluster ready after %s: brokers %s (registered after %s)",
			time.Since(start).Round(time.Millisecond), strings.Join(bs, ","), tBrokers.Round(time.Millisecond))
		if *isr {
			fmt.Printf(", %d partitions in sync", partitions)
		}
		if *balance {
			fmt.Printf(", %d leaders moved to their preferred replica", moved)
		}
		fmt.Println()
	}
}

// inSync returns how many partitions there are, or an error naming those
// without a leader or with a live replica outside their ISR.
func inSync(ctx context.Context, adm *kadm.Client) (int, error) {
	// The live brokers again: one may have stopped since.
	live, err := adm.ListBrokers(ctx)
	if err != nil {
		return 0, err
	}
	topics, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return 0, err
	}
	partitions := 0
	var behind []string
	for _, t := range topics.Sorted() {
		if t.Err != nil {
			return 0, fmt.Errorf("topic %s: %w", t.Topic, t.Err)
		}
		for _, p := range t.Partitions.Sorted() {
			partitions++
			if lag := notInSync(p, live.NodeIDs()); lag != "" {
				behind = append(behind, fmt.Sprintf("%s/%d %s", p.Topic, p.Partition, lag))
			}
		}
	}
	if len(behind) > 5 {
		behind = append(behind[:5], fmt.Sprintf("and %d more", len(behind)-5))
	}
	if len(behind) > 0 {
		return 0, errors.New(strings.Join(behind, ", "))
	}
	return partitions, nil
}

// electPreferred asks for a preferred leader election of every partition
// whose preferred replica (the first) is a live broker in its ISR but not
// the leader: after a restart all leadership sits on the brokers that stayed
// up, and Kafka's own rebalance waits leader.imbalance.check.interval.seconds
// (300 s). It returns nil once no such partition is left, and how many
// elections it asked for in all (moved counts the earlier attempts).
func electPreferred(ctx context.Context, adm *kadm.Client, moved int) (int, error) {
	live, err := adm.ListBrokers(ctx)
	if err != nil {
		return moved, err
	}
	topics, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return moved, err
	}
	off := make(kadm.TopicsSet)
	n := 0
	for _, t := range topics {
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 || p.Leader == p.Replicas[0] {
				continue
			}
			if pref := p.Replicas[0]; slices.Contains(live.NodeIDs(), pref) && slices.Contains(p.ISR, pref) {
				off.Add(t.Topic, p.Partition)
				n++
			}
		}
	}
	if n == 0 {
		return moved, nil
	}
	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, off)
	if err != nil {
		return moved, err
	}
	for _, ps := range res {
		for _, r := range ps {
			// Not needed: it moved since the metadata was read.
			if r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
				return moved, fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, r.Err)
			}
		}
	}
	// Asked for; the next attempt checks that the metadata shows it.
	return moved + n, fmt.Errorf("%d partitions not yet led by their preferred replica", n)
}

// notInSync says what keeps partition p from being usable and fully
// replicated among the live brokers, or "" when nothing does.
func notInSync(p kadm.PartitionDetail, live []int32) string {
	if p.Err != nil {
		return p.Err.Error()
	}
	if p.Leader < 0 {
		return "has no leader"
	}
	var out []int32
	for _, r := range p.Replicas {
		if slices.Contains(live, r) && !slices.Contains(p.ISR, r) {
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		return fmt.Sprintf("isr %v lacks live replicas %v", p.ISR, out)
	}
	return ""
}

func missingIDs(live kadm.BrokerDetails, want []int32) []int32 {
	var missing []int32
	for _, id := range want {
		if !slices.Contains(live.NodeIDs(), id) {
			missing = append(missing, id)
		}
	}
	return missing
}

func withAdmin(ctx context.Context, seeds []string, f func(*kadm.Client) error) error {
	wait := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(wait),
		kgo.RequestRetries(0),
		kgo.RetryTimeout(wait),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(kadm.NewClient(cl))
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
