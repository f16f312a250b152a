// Command kafkaready waits until a Kafka cluster answers a real metadata
// request with at least one live broker. scripts/services-up.sh builds and
// runs it after starting the broker; it is also handy by hand:
//
//	go run ./internal/tools/kafkaready -brokers 127.0.0.1:9092 -timeout 60s
//
// It exits 0 once the cluster answers (printing the brokers and the elapsed
// time), 1 on timeout. With -coordinator it then also waits until a group
// coordinator is found, which makes a fresh broker create __consumer_offsets,
// so that the first consumer group of a test does not pay for it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", envOr("FALLBACK_BROKERS", "127.0.0.1:9092"), "comma-separated seed brokers")
	timeout := flag.Duration("timeout", 90*time.Second, "give up after this long")
	interval := flag.Duration("interval", 250*time.Millisecond, "pause between attempts")
	quiet := flag.Bool("q", false, "print nothing on success")
	coordinator := flag.Bool("coordinator", false, "also wait for a group coordinator (creates __consumer_offsets)")
	flag.Parse()

	start := time.Now()
	deadline := start.Add(*timeout)
	var lastErr error
	for attempt := 1; ; attempt++ {
		details, err := probe(strings.Split(*brokers, ","), min(5*time.Second, time.Until(deadline)))
		if err == nil {
			if !*quiet {
				ids := make([]string, 0, len(details))
				for _, b := range details {
					ids = append(ids, fmt.Sprintf("%d@%s:%d", b.NodeID, b.Host, b.Port))
				}
				fmt.Printf("kafka ready after %s (%d attempts): brokers %s\n",
					time.Since(start).Round(time.Millisecond), attempt, strings.Join(ids, ","))
			}
			if *coordinator {
				waitCoordinator(strings.Split(*brokers, ","), start, deadline, *interval, *quiet)
			}
			return
		}
		lastErr = err
		if time.Now().Add(*interval).After(deadline) {
			break
		}
		time.Sleep(*interval)
	}
	fmt.Fprintf(os.Stderr, "kafka at %s not ready after %s: %v\n", *brokers, *timeout, lastErr)
	os.Exit(1)
}

// probe opens a fresh client (so a broker that was not listening yet is
// dialled again) and asks for the broker list.
func probe(seeds []string, wait time.Duration) (kadm.BrokerDetails, error) {
	if wait <= 0 {
		return nil, errors.New("timed out")
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(wait),
		kgo.RequestRetries(0),
		kgo.RetryTimeout(wait),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	details, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		return nil, err
	}
	if len(details) == 0 {
		return nil, errors.New("metadata lists no brokers")
	}
	return details, nil
}

// waitCoordinator asks for a group coordinator until the cluster has one.
func waitCoordinator(seeds []string, start, deadline time.Time, interval time.Duration, quiet bool) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkaready:", err)
		os.Exit(1)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(5*time.Second, time.Until(deadline)))
		err := adm.FindGroupCoordinators(ctx, "kafkaready-warmup").Error()
		cancel()
		if err == nil {
			if !quiet {
				fmt.Printf("group coordinator ready after %s (%s in all)\n",
					time.Since(t).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			}
			return
		}
		if time.Now().Add(interval).After(deadline) {
			cl.Close()
			fmt.Fprintf(os.Stderr, "kafka has no group coordinator after %s: %v\n", time.Since(start), err)
			os.Exit(1)
		}
		time.Sleep(interval)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
