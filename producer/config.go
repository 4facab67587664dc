package producer

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/message"
)

// Defaults applied by Config.withDefaults (and so by New) to zero fields.
const (
	// DefaultMessageSize is the value size in bytes when Config.MessageSize is 0.
	DefaultMessageSize = 1000
	// DefaultMaxInFlight is the number of produce requests in flight per
	// broker connection when Config.MaxInFlight is 0 (1 when idempotent).
	DefaultMaxInFlight = 5
	// DefaultFlushTimeout bounds each wait of a clean stop (data acks, then
	// end-marker acks, then close) when Config.FlushTimeout is 0.
	DefaultFlushTimeout = 30 * time.Second
	// DefaultRetries is how often sarama retries a retriable produce error
	// when Config.Retries is 0.
	DefaultRetries = 3
)

// maxBodyOverhead is the longest in-body metadata besides the producer id:
// '/', a 16-character run id, ';', a 20-digit sequence, ';', a 19-digit
// timestamp, ';'.
const maxBodyOverhead = 1 + runIDLen + 1 + 20 + 1 + 19 + 1

// Config says what a Producer sends. The zero value of each field means its
// documented default; Topics is the only required field.
type Config struct {
	// ID is the producer id carried in every message. Default: the host
	// name. It must satisfy message.ValidID.
	ID string
	// Topics to produce to, each at Rate. Required.
	Topics []string
	// Rate is the target messages per second per topic. 0 (the default)
	// means unlimited: send as fast as the cluster acknowledges.
	Rate float64
	// Messages, when non-zero, stops the producer after this many data
	// messages per topic. Default 0: no limit.
	Messages uint64
	// Duration, when non-zero, stops the producer after this long. With a
	// Rate, exactly the messages scheduled before Duration are sent. Default
	// 0: until the context passed to Run is done.
	Duration time.Duration
	// MessageSize is the exact value size in bytes of every data message.
	// Default DefaultMessageSize (1000). With the Body encoding it must be at
	// least the longest in-body metadata (len(ID)+59).
	MessageSize int
	// Partitions is the partition count keys are mapped onto: key k goes to
	// partition k % Partitions. Default 0: each topic's partition count
	// from the cluster's metadata. A topic with fewer partitions is an error.
	Partitions int
	// Keys is the number of keys (streams) per topic, K in key = n % K.
	// Default 0: the partition count. It must be a multiple of it.
	Keys int
	// Encoding says where the metadata goes: message.Headers (the default)
	// or message.Body.
	Encoding message.Encoding
	// Acks is the acknowledgement level: "all" (the default, also "-1"),
	// "1" (leader only) or "0" (none: every send counts as acked).
	Acks string
	// Idempotent enables the idempotent producer. It requires Acks "all"
	// and MaxInFlight 1. Default false.
	Idempotent bool
	// MaxInFlight is the number of produce requests in flight per broker
	// connection. Default DefaultMaxInFlight (5), or 1 when Idempotent.
	MaxInFlight int
	// Retries is how often a retriable produce error is retried before the
	// message counts as failed. Default DefaultRetries (3); -1 disables
	// retries.
	Retries int
	// FlushTimeout bounds each wait of a clean stop. Default
	// DefaultFlushTimeout (30s).
	FlushTimeout time.Duration
}

// ConfigError is a Config field that does not validate. The command line
// maps Field to the flag that sets it.
type ConfigError struct {
	// Field is the Config field name, e.g. "Rate".
	Field string
	// Value is the offending value.
	Value any
	// Reason says why it is wrong.
	Reason string
}

// Error formats the error as "producer config: Field=value: reason".
func (e *ConfigError) Error() string {
	return fmt.Sprintf("producer config: %s=%v: %s", e.Field, e.Value, e.Reason)
}

func fieldErr(field string, value any, format string, args ...any) error {
	return &ConfigError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// requiredAcks maps Acks to sarama's setting.
func requiredAcks(acks string) (sarama.RequiredAcks, bool) {
	switch strings.ToLower(acks) {
	case "", "all", "-1":
		return sarama.WaitForAll, true
	case "1":
		return sarama.WaitForLocal, true
	case "0":
		return sarama.NoResponse, true
	}
	return 0, false
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.ID == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			c.ID = h
		} else {
			c.ID = "kmt-producer"
		}
	}
	if c.MessageSize == 0 {
		c.MessageSize = DefaultMessageSize
	}
	if c.Acks == "" {
		c.Acks = "all"
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
		if c.Idempotent {
			c.MaxInFlight = 1
		}
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	c.Topics = append([]string(nil), c.Topics...)
	return c
}

// Validate checks the configuration after applying defaults. The error is a
// *ConfigError naming the first field that is wrong and why.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !message.ValidID(c.ID) {
		return fieldErr("ID", c.ID, "must be 1-200 bytes without ';', '/' or control characters")
	}
	if len(c.Topics) == 0 {
		return fieldErr("Topics", c.Topics, "at least one topic is required")
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		if err := validTopic(t); err != "" {
			return fieldErr("Topics", t, "%s", err)
		}
		if seen[t] {
			return fieldErr("Topics", t, "topic listed twice")
		}
		seen[t] = true
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fieldErr("Rate", c.Rate, "must be a finite number >= 0 (0 = unlimited)")
	}
	if c.Rate > 0 && c.Rate < 1e-3 {
		return fieldErr("Rate", c.Rate, "must be at least 0.001 messages/s (or 0 for unlimited)")
	}
	if c.Duration < 0 {
		return fieldErr("Duration", c.Duration, "must be >= 0 (0 = until stopped)")
	}
	if c.MessageSize < 1 || c.MessageSize > 64<<20 {
		return fieldErr("MessageSize", c.MessageSize, "must be between 1 and 67108864 bytes")
	}
	if c.Encoding != message.Headers && c.Encoding != message.Body {
		return fieldErr("Encoding", int(c.Encoding), "must be message.Headers or message.Body")
	}
	if c.Encoding == message.Body && c.MessageSize < len(c.ID)+maxBodyOverhead {
		return fieldErr("MessageSize", c.MessageSize,
			"the in-body encoding needs at least %d bytes for producer id %q (id length + %d)", len(c.ID)+maxBodyOverhead, c.ID, maxBodyOverhead)
	}
	if c.Partitions < 0 || c.Partitions > math.MaxInt32 {
		return fieldErr("Partitions", c.Partitions, "must be >= 0 (0 = from the topic's metadata)")
	}
	if c.Keys < 0 || c.Keys > 1<<24 {
		return fieldErr("Keys", c.Keys, "must be between 0 (= partitions) and 16777216")
	}
	if c.Keys > 0 && c.Partitions > 0 && c.Keys%c.Partitions != 0 {
		return fieldErr("Keys", c.Keys, "must be a multiple of Partitions (%d) so every key lives in one partition", c.Partitions)
	}
	acks, ok := requiredAcks(c.Acks)
	if !ok {
		return fieldErr("Acks", c.Acks, `must be "all", "1" or "0"`)
	}
	if c.MaxInFlight < 1 {
		return fieldErr("MaxInFlight", c.MaxInFlight, "must be >= 1")
	}
	if c.Retries < -1 {
		return fieldErr("Retries", c.Retries, "must be >= 0, or -1 for no retries")
	}
	if c.Idempotent {
		if acks != sarama.WaitForAll {
			return fieldErr("Acks", c.Acks, `the idempotent producer requires acks "all"`)
		}
		if c.MaxInFlight != 1 {
			return fieldErr("MaxInFlight", c.MaxInFlight, "the idempotent producer (as sarama implements it) requires 1")
		}
		if c.Retries < 1 {
			return fieldErr("Retries", c.Retries, "the idempotent producer requires at least 1 retry")
		}
	}
	if c.FlushTimeout < 0 {
		return fieldErr("FlushTimeout", c.FlushTimeout, "must be >= 0")
	}
	return nil
}

// validTopic returns why t is not a legal Kafka topic name, or "".
func validTopic(t string) string {
	if t == "" {
		return "topic name is empty"
	}
	if len(t) > 249 {
		return "topic name is longer than 249 characters"
	}
	if t == "." || t == ".." {
		return `topic name cannot be "." or ".."`
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "topic names may contain only ASCII letters, digits, '.', '_' and '-'"
		}
	}
	return ""
}
