package kafkatest

import (
	"os"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
)

// BrokersEnv names the environment variable that points the end-to-end
// tests at a real Kafka: a comma-separated host:port list.
const BrokersEnv = "KMT_TEST_BROKERS"

// Brokers returns the Kafka a test runs against: the brokers in
// KMT_TEST_BROKERS when it is set (external is then true; the test must use
// topic names of its own and cannot kill brokers), otherwise a fresh
// embedded cluster of n brokers on 127.0.0.1, closed when the test ends.
func Brokers(t testing.TB, n int) (addrs []string, external bool) {
	t.Helper()
	if v := os.Getenv(BrokersEnv); v != "" {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		t.Logf("running against %s=%s", BrokersEnv, strings.Join(addrs, ","))
		return addrs, true
	}
	return Embedded(t, embedded.Brokers(n)).Addrs(), false
}

// Cluster is what test helpers need of a Kafka cluster: its brokers. An
// *embedded.Cluster is one, and so is a BrokerList (the Kafka named by
// KMT_TEST_BROKERS).
type Cluster interface{ Addrs() []string }

// Embedded starts an embedded cluster with opts (see embedded.Start for
// the defaults) and closes it when the test ends.
func Embedded(t testing.TB, opts ...embedded.Option) *embedded.Cluster {
	t.Helper()
	c, err := embedded.Start(opts...)
	if err != nil {
		t.Fatalf("start an embedded cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// BrokerList is a cluster given by its broker addresses, as Brokers returns
// them; like *embedded.Cluster it has Addrs, so test helpers can take
// either.
type BrokerList []string

// Addrs returns the addresses.
func (b BrokerList) Addrs() []string { return b }

// Records returns how many records topic holds on brokers: the sum over its
// partitions of the high minus the low watermark. It returns 0 while the
// topic does not exist or a partition has no leader yet, so callers poll.
func Records(t testing.TB, brokers []string, topic string) int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0 // what kmt speaks (kafkaconf.DefaultVersion)
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatalf("records of %s: %v", topic, err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range parts {
		hwm, err1 := client.GetOffset(topic, p, sarama.OffsetNewest)
		low, err2 := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err1 != nil || err2 != nil {
			return 0
		}
		n += hwm - low
	}
	return n
}
