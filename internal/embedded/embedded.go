// Package embedded starts an in-process Kafka (franz-go's kfake) and Redis
// (miniredis) for the demo and the tests, so neither needs any setup. They
// are stand-ins: `fallback run` with addresses uses real servers.
package embedded

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process Kafka cluster.
type Kafka struct {
	cluster *kfake.Cluster
}

// StartKafka starts a one-broker cluster on a free loopback port. Topics are
// created by the processor as on a real broker; partitions is the default
// for any created without a count.
func StartKafka(partitions int32) (*Kafka, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(int(partitions)))
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	return &Kafka{cluster: c}, nil
}

// Brokers are the seed addresses.
func (k *Kafka) Brokers() []string { return k.cluster.ListenAddrs() }

// Close stops the cluster; its data is gone.
func (k *Kafka) Close() { k.cluster.Close() }

// Redis is an in-process Redis server.
type Redis struct {
	*miniredis.Miniredis
}

// StartRedis starts a server on a free loopback port.
func StartRedis() (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	return &Redis{m}, nil
}

// URL is the redis:// address of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }
