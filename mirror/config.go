package mirror

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// Mode says when the mirror commits a source offset.
type Mode int

const (
	// Safe commits a source offset only after the destination acknowledged
	// the record and every lower offset of its partition: at-least-once, so
	// a crash or rebalance can duplicate records but never lose one.
	Safe Mode = iota
	// UnsafeCommitBeforeAck commits source offsets as soon as records are
	// read, before they are produced: each batch read from a partition is
	// committed, then produced. Whatever is in flight when a worker dies is
	// lost: an abrupt Kill loses every record read but not yet acknowledged
	// by the destination (more the slower the destination). For self-tests
	// of the tester only.
	UnsafeCommitBeforeAck
)

// String returns "safe" or "unsafe-commit-before-ack".
func (m Mode) String() string {
	switch m {
	case Safe:
		return "safe"
	case UnsafeCommitBeforeAck:
		return "unsafe-commit-before-ack"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode parses "safe" or "unsafe-commit-before-ack" (also "unsafe").
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "safe":
		return Safe, nil
	case "unsafe", "unsafe-commit-before-ack":
		return UnsafeCommitBeforeAck, nil
	}
	return Safe, fmt.Errorf("mirror mode %q is not one of safe, unsafe-commit-before-ack", s)
}

// Fault is what an injected fault does to one source record.
type Fault int

// Faults the mirror can inject.
const (
	// NoFault mirrors the record normally.
	NoFault Fault = iota
	// Drop never produces the record but commits past it as if it had been
	// delivered: the record is lost. A dropped record stays dropped if it is
	// read again.
	Drop
	// Duplicate produces the record twice in a row, the first time it is
	// read.
	Duplicate
	// Swap holds the record back and produces it right after its partner
	// (see Select), the first time it is read: the pair arrives reordered.
	Swap
)

var faultNames = [...]string{"none", "drop", "duplicate", "swap"}

// String returns "none", "drop", "duplicate" or "swap", the values of the
// fault label of kmt_mirror_injected_total.
func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// By says how a Select names records.
type By int

const (
	// ByOffset names records by source partition and offset.
	ByOffset By = iota
	// BySeq names records by kmt stream: record key index and per-key
	// sequence number (decoded from headers, or from the value when the
	// record has no kmt header). End-of-stream markers never match.
	BySeq
)

// Select names a deterministic set of source records.
//
// ByOffset selects offsets [From, To) of Topic's Partition. For Swap, each
// selected record's partner is the next record read from the same
// partition (normally offset+1).
//
// BySeq selects per-key sequences [From, To) of key index Key of Topic,
// from producer Producer (every producer when empty). For Swap, each
// selected record's partner is the record of the same stream (topic,
// producer, run, key) with the next sequence, so the stream sees seq+1
// before seq.
//
// A record that is some held record's partner is never itself held, so a
// Swap range of n consecutive records swaps ⌈n/2⌉ pairs; use ranges of one
// record (To = From+1) to say exactly which pairs.
type Select struct {
	// Topic is the source topic.
	Topic string `json:"topic"`
	// By is ByOffset (the default) or BySeq.
	By By `json:"by"`
	// Partition is the source partition (ByOffset).
	Partition int32 `json:"partition,omitempty"`
	// Key is the kmt key index (BySeq).
	Key uint32 `json:"key,omitempty"`
	// Producer restricts BySeq to one producer id; empty means any.
	Producer string `json:"producer,omitempty"`
	// From and To bound the half-open range of offsets (ByOffset) or
	// sequences (BySeq).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Offsets selects offsets [from, to) of topic's partition.
func Offsets(topic string, partition int32, from, to int64) Select {
	return Select{Topic: topic, By: ByOffset, Partition: partition, From: uint64(from), To: uint64(to)}
}

// Seqs selects per-key sequences [from, to) of key index key of topic, from
// every producer.
func Seqs(topic string, key uint32, from, to uint64) Select {
	return Select{Topic: topic, By: BySeq, Key: key, From: from, To: to}
}

func (s Select) validate(field string) error {
	if s.Topic == "" {
		return fmt.Errorf("%s: topic is empty", field)
	}
	if s.By != ByOffset && s.By != BySeq {
		return fmt.Errorf("%s: by is %d, not ByOffset or BySeq", field, s.By)
	}
	if s.To <= s.From {
		return fmt.Errorf("%s: range [%d, %d) is empty", field, s.From, s.To)
	}
	if s.By == ByOffset && (s.Partition < 0 || s.To > 1<<63-1) {
		return fmt.Errorf("%s: partition %d or offsets [%d, %d) out of range", field, s.Partition, s.From, s.To)
	}
	return nil
}

// Faults are faults to inject, for self-tests of the tester. Each injection
// is counted once per source record (topic, partition, offset), in
// kmt_mirror_injected_total{fault} and Counters, so a test can compare the
// loss, duplicate and reorder counts a consumer reports with exactly what
// was injected: a dropped record is missing once, a duplicated record
// arrives twice, a swapped pair arrives reordered once. A record matched by
// several selectors gets the first fault of Drop, Duplicate, Swap.
type Faults struct {
	// Drop selects records that are never produced.
	Drop []Select `json:"drop,omitempty"`
	// Duplicate selects records produced twice.
	Duplicate []Select `json:"duplicate,omitempty"`
	// Swap selects the first record of each pair produced in reverse order.
	Swap []Select `json:"swap,omitempty"`
	// Func, when non-nil, is asked about every record no selector matched,
	// once per read. A Swap it returns pairs the record with the next one
	// read from the same partition.
	Func func(*sarama.ConsumerMessage) Fault `json:"-"`
}

// Empty reports whether no fault is configured.
func (f Faults) Empty() bool {
	return len(f.Drop) == 0 && len(f.Duplicate) == 0 && len(f.Swap) == 0 && f.Func == nil
}

// Config configures a Mirror. The zero value, with Topics or TopicRegex set,
// is a safe one-worker mirror.
type Config struct {
	// Topics lists the source topics to mirror. Exactly one of Topics and
	// TopicRegex must be set.
	Topics []string
	// TopicRegex selects source topics by a regular expression matched
	// against the whole name (anchored); internal topics ("__" prefix) are
	// never mirrored. New matching topics are picked up while running.
	TopicRegex string
	// Group is the consumer group on the source cluster. Default
	// "kmt-mirror".
	Group string
	// TopicPrefix is prepended to every destination topic name. Default "".
	TopicPrefix string
	// Workers is the number of workers Run starts (each one consumer group
	// member with its own connections). Default 1.
	Workers int
	// Mode is Safe (the default) or UnsafeCommitBeforeAck.
	Mode Mode
	// Faults are injected faults (self-tests). Default: none.
	Faults Faults
	// CommitInterval is how often marked offsets are committed. Default 1s.
	CommitInterval time.Duration
	// DrainTimeout bounds how long a graceful stop or rebalance waits for
	// the destination to acknowledge what is in flight before giving the
	// partition up without committing past it. Default 10s.
	DrainTimeout time.Duration
	// SessionTimeout is the consumer group session timeout on the source;
	// the heartbeat interval is a third of it. After an abrupt Kill the
	// group reassigns the killed members' partitions once it expires.
	// Default 10s (the broker's minimum must allow it; kfake's is 6s unless
	// configured lower).
	SessionTimeout time.Duration
	// RefreshInterval is how often source topics and partition counts are
	// re-read to create or grow destination topics and pick up new topics.
	// Default 2s.
	RefreshInterval time.Duration
	// ReplicationFactor of destination topics the mirror creates. Default
	// -1: the destination cluster's default.
	ReplicationFactor int16
	// SwapWait is how long a held Swap record waits for its partner before
	// it is produced alone (not counted as injected). Default 5s.
	SwapWait time.Duration
	// Logger receives the mirror's logs. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, *regexp.Regexp, error) {
	var re *regexp.Regexp
	switch {
	case len(cfg.Topics) == 0 && cfg.TopicRegex == "":
		return cfg, nil, fmt.Errorf("mirror config: no topics: set Topics or TopicRegex")
	case len(cfg.Topics) > 0 && cfg.TopicRegex != "":
		return cfg, nil, fmt.Errorf("mirror config: Topics and TopicRegex are both set; use one")
	case cfg.TopicRegex != "":
		var err error
		if re, err = regexp.Compile("^(?:" + cfg.TopicRegex + ")$"); err != nil {
			return cfg, nil, fmt.Errorf("mirror config: TopicRegex %q: %w", cfg.TopicRegex, err)
		}
	}
	seen := map[string]bool{}
	for _, t := range cfg.Topics {
		if t == "" || strings.ContainsAny(t, " ,/") {
			return cfg, nil, fmt.Errorf("mirror config: topic name %q is not valid", t)
		}
		if seen[t] {
			return cfg, nil, fmt.Errorf("mirror config: topic %q listed twice", t)
		}
		seen[t] = true
	}
	if cfg.Group == "" {
		cfg.Group = "kmt-mirror"
	}
	if cfg.Workers < 0 {
		return cfg, nil, fmt.Errorf("mirror config: workers %d is negative", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Mode != Safe && cfg.Mode != UnsafeCommitBeforeAck {
		return cfg, nil, fmt.Errorf("mirror config: mode %d is not Safe or UnsafeCommitBeforeAck", cfg.Mode)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CommitInterval", &cfg.CommitInterval, time.Second},
		{"DrainTimeout", &cfg.DrainTimeout, 10 * time.Second},
		{"SessionTimeout", &cfg.SessionTimeout, 10 * time.Second},
		{"RefreshInterval", &cfg.RefreshInterval, 2 * time.Second},
		{"SwapWait", &cfg.SwapWait, 5 * time.Second},
	} {
		if *d.v < 0 {
			return cfg, nil, fmt.Errorf("mirror config: %s %s is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.SessionTimeout < 30*time.Millisecond {
		return cfg, nil, fmt.Errorf("mirror config: SessionTimeout %s is too short (at least 30ms)", cfg.SessionTimeout)
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = -1
	}
	for i, s := range cfg.Faults.Drop {
		if err := s.validate(fmt.Sprintf("mirror config: Faults.Drop[%d]", i)); err != nil {
			return cfg, nil, err
		}
	}
	for i, s := range cfg.Faults.Duplicate {
		if err := s.validate(fmt.Sprintf("mirror config: Faults.Duplicate[%d]", i)); err != nil {
			return cfg, nil, err
		}
	}
	for i, s := range cfg.Faults.Swap {
		if err := s.validate(fmt.Sprintf("mirror config: Faults.Swap[%d]", i)); err != nil {
			return cfg, nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, re, nil
}
