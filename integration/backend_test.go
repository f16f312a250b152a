package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/embedded"
)

// backend is the Kafka and Redis one test run uses. The same test bodies run
// on every backend: real servers named by FALLBACK_BROKERS and
// FALLBACK_REDIS_URL (the variables `fallback run` reads; "cluster" when they
// name several brokers and a Redis Cluster, as `scripts/services-up.sh
// --cluster` prints them), containers when a Docker engine answers, else the
// embedded kfake and miniredis.
type backend struct {
	name     string
	brokers  []string
	redisURL string
	// miniredis is set on the embedded backend, for tests that need its clock
	// control or fault switches.
	miniredis *embedded.Redis
	close     func()
}

// redisClient connects as `fallback run` does: a cluster client when the
// URL lists more nodes with addr=.
func (b *backend) redisClient() (redis.UniversalClient, error) {
	return clients.Redis{URL: b.redisURL}.Client()
}

var suite *backend

func TestMain(m *testing.M) {
	b, err := pickBackend()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: no backend:", err)
		os.Exit(1)
	}
	suite = b
	fmt.Fprintf(os.Stderr, "integration backend: %s (kafka %s, redis %s)\n", b.name, strings.Join(b.brokers, ","), b.redisURL)
	code := m.Run()
	removeFaultBinary()
	b.close()
	fmt.Fprintf(os.Stderr, "integration backend was: %s\n", b.name)
	os.Exit(code)
}

func pickBackend() (*backend, error) {
	brokers, redisURL := os.Getenv("FALLBACK_BROKERS"), os.Getenv("FALLBACK_REDIS_URL")
	switch {
	case brokers != "" && redisURL != "":
		b := &backend{name: "real", brokers: strings.Split(brokers, ","), redisURL: redisURL, close: func() {}}
		if len(b.brokers) > 1 && (clients.Redis{URL: redisURL}).IsCluster() {
			b.name = "cluster"
		}
		return b, nil
	case brokers != "" || redisURL != "":
		return nil, fmt.Errorf("set both FALLBACK_BROKERS and FALLBACK_REDIS_URL, or neither")
	}
	if b, ok, err := containerBackend(); ok || err != nil {
		return b, err
	}
	return embeddedBackend()
}

func embeddedBackend() (*backend, error) {
	k, err := embedded.StartKafka(3)
	if err != nil {
		return nil, err
	}
	r, err := embedded.StartRedis()
	if err != nil {
		k.Close()
		return nil, err
	}
	return &backend{name: "embedded", brokers: k.Brokers(), redisURL: r.URL(), miniredis: r,
		close: func() { k.Close(); r.Close() }}, nil
}
