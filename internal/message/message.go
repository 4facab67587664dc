// Package message defines how kmt identifies a message on the wire: the record
// key, the metadata carried in record headers or in the value, and the
// end-of-stream marker. Decoding never allocates: decoded byte fields alias the
// record they came from.
//
// A stream is (topic, producer id, run id, key). The producer spreads a global
// counter n over K keys: key = n % K, and the per-key sequence carried in the
// message is n / K, so every stream's sequence runs 0, 1, 2, ... and must
// arrive in that order.
package message

import (
	"errors"
	"strconv"

	"github.com/IBM/sarama"
)

// Record header names used by the header encoding.
const (
	HeaderProducer = "kmt-producer" // producer id
	HeaderRun      = "kmt-run"      // producer run id, new on every start
	HeaderSeq      = "kmt-seq"      // per-key sequence (decimal); on an end marker the count sent on the key
	HeaderTime     = "kmt-ts"       // creation time, Unix nanoseconds (decimal)
	HeaderEnd      = "kmt-end"      // present (value "1") on end-of-stream markers only
)

// EndPayload is the payload field of an in-body end-of-stream marker.
const EndPayload = "kmt:end"

// Encoding says where a message's metadata lives.
type Encoding int

const (
	// Headers carries the metadata in Kafka record headers; the value is filler.
	Headers Encoding = iota
	// Body carries the metadata in the value as
	// "producer/run;sequence;unix-nanos;payload", the format of the original
	// kafka-mirror-tester with the run id appended to the producer id.
	Body
)

// String returns "headers" or "body".
func (e Encoding) String() string {
	if e == Body {
		return "body"
	}
	return "headers"
}

// Errors returned by the decoders. Records that fail are foreign or malformed:
// the consumer counts and skips them.
var (
	ErrNoKey       = errors.New("record key is not a kmt key index")
	ErrNoMetadata  = errors.New("record carries no kmt metadata")
	ErrBadSequence = errors.New("kmt sequence is not a decimal number")
	ErrBadTime     = errors.New("kmt timestamp is not a decimal number")
	ErrBadIdentity = errors.New("kmt producer or run id is empty or malformed")
)

// Meta is the decoded identity of one record. Producer and Run alias the
// record's bytes and are valid only as long as the record is.
type Meta struct {
	Producer []byte
	Run      []byte
	Key      uint32
	Seq      uint64
	UnixNano int64
	End      bool
}

// ValidID reports whether s can be used as a producer or run id: non-empty, at
// most 200 bytes, and free of the separators ';' and '/' and of control bytes.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ';' || c == '/' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// AppendKey appends the record key for key index k.
func AppendKey(dst []byte, k uint32) []byte {
	return strconv.AppendUint(dst, uint64(k), 10)
}

// ParseKey parses a record key written by AppendKey.
func ParseKey(b []byte) (uint32, error) {
	v, ok := parseUint(b)
	if !ok || v > 1<<32-1 {
		return 0, ErrNoKey
	}
	return uint32(v), nil
}

// AppendBody appends an in-body encoded value of exactly size bytes (or the
// metadata alone when it is longer than size) to dst. filler provides the
// payload bytes and must be at least size bytes long.
func AppendBody(dst []byte, producer, run string, seq uint64, unixNano int64, size int, filler []byte) []byte {
	start := len(dst)
	dst = AppendBodyPrefix(dst, producer, run, seq, unixNano)
	if n := size - (len(dst) - start); n > 0 {
		dst = append(dst, filler[:n]...)
	}
	return dst
}

// AppendBodyPrefix appends the metadata part of an in-body value, up to and
// including the separator before the payload. AppendBody is this prefix
// followed by filler[:size-len(prefix)], so two values whose prefixes have
// the same length differ only in the prefix: a producer reusing a buffer
// rewrites just that.
func AppendBodyPrefix(dst []byte, producer, run string, seq uint64, unixNano int64) []byte {
	dst = append(dst, producer...)
	dst = append(dst, '/')
	dst = append(dst, run...)
	dst = append(dst, ';')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ';')
	dst = strconv.AppendInt(dst, unixNano, 10)
	return append(dst, ';')
}

// AppendEndBody appends an in-body end-of-stream marker saying count messages
// were sent on the key.
func AppendEndBody(dst []byte, producer, run string, count uint64, unixNano int64) []byte {
	dst = append(dst, producer...)
	dst = append(dst, '/')
	dst = append(dst, run...)
	dst = append(dst, ';')
	dst = strconv.AppendUint(dst, count, 10)
	dst = append(dst, ';')
	dst = strconv.AppendInt(dst, unixNano, 10)
	dst = append(dst, ';')
	return append(dst, EndPayload...)
}

// NewHeaders returns record headers for a message. The values are freshly
// allocated; end marks an end-of-stream marker whose seq is the count sent.
func NewHeaders(producer, run string, seq uint64, unixNano int64, end bool) []sarama.RecordHeader {
	n := 4
	if end {
		n = 5
	}
	h := make([]sarama.RecordHeader, n)
	buf := make([]byte, 0, 40)
	buf = strconv.AppendUint(buf, seq, 10)
	sl := len(buf)
	buf = strconv.AppendInt(buf, unixNano, 10)
	h[0] = sarama.RecordHeader{Key: []byte(HeaderProducer), Value: []byte(producer)}
	h[1] = sarama.RecordHeader{Key: []byte(HeaderRun), Value: []byte(run)}
	h[2] = sarama.RecordHeader{Key: []byte(HeaderSeq), Value: buf[:sl:sl]}
	h[3] = sarama.RecordHeader{Key: []byte(HeaderTime), Value: buf[sl:]}
	if end {
		h[4] = sarama.RecordHeader{Key: []byte(HeaderEnd), Value: []byte("1")}
	}
	return h
}

// DecodeHeaders decodes a header-encoded record into m.
func DecodeHeaders(key []byte, headers []*sarama.RecordHeader, m *Meta) error {
	k, err := ParseKey(key)
	if err != nil {
		return err
	}
	*m = Meta{Key: k}
	var seq, ts []byte
	var have int
	for _, h := range headers {
		if h == nil || len(h.Key) < 6 || string(h.Key[:4]) != "kmt-" {
			continue
		}
		switch string(h.Key) {
		case HeaderProducer:
			m.Producer = h.Value
			have |= 1
		case HeaderRun:
			m.Run = h.Value
			have |= 2
		case HeaderSeq:
			seq = h.Value
			have |= 4
		case HeaderTime:
			ts = h.Value
			have |= 8
		case HeaderEnd:
			m.End = true
		}
	}
	if have != 15 {
		return ErrNoMetadata
	}
	return finish(m, seq, ts)
}

// DecodeBody decodes an in-body encoded record into m.
func DecodeBody(key, value []byte, m *Meta) error {
	k, err := ParseKey(key)
	if err != nil {
		return err
	}
	*m = Meta{Key: k}
	var fields [3][]byte
	rest := value
	for i := range fields {
		j := indexByte(rest, ';')
		if j < 0 {
			return ErrNoMetadata
		}
		fields[i] = rest[:j]
		rest = rest[j+1:]
	}
	id := fields[0]
	slash := indexByte(id, '/')
	if slash < 0 {
		return ErrBadIdentity
	}
	m.Producer, m.Run = id[:slash], id[slash+1:]
	m.End = string(rest) == EndPayload
	return finish(m, fields[1], fields[2])
}

func finish(m *Meta, seq, ts []byte) error {
	if len(m.Producer) == 0 || len(m.Run) == 0 || indexByte(m.Run, '/') >= 0 {
		return ErrBadIdentity
	}
	var ok bool
	if m.Seq, ok = parseUint(seq); !ok {
		return ErrBadSequence
	}
	t, ok := parseUint(ts)
	if !ok || t > 1<<63-1 {
		return ErrBadTime
	}
	m.UnixNano = int64(t)
	return nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// parseUint parses a canonical decimal number (no sign, no leading zeros
// except "0" itself) that fits in a uint64.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// StreamID identifies a stream: the messages one producer run sends on one
// key of one topic. Topic is always the source topic name.
type StreamID struct {
	Topic    string `json:"topic"`
	Producer string `json:"producer"`
	Run      string `json:"run"`
	Key      uint32 `json:"key"`
}

// String formats the stream as "topic/producer/run/key".
func (s StreamID) String() string {
	return s.Topic + "/" + s.Producer + "/" + s.Run + "/" + strconv.FormatUint(uint64(s.Key), 10)
}

// Less orders streams by topic, producer, run and key.
func (s StreamID) Less(o StreamID) bool {
	if s.Topic != o.Topic {
		return s.Topic < o.Topic
	}
	if s.Producer != o.Producer {
		return s.Producer < o.Producer
	}
	if s.Run != o.Run {
		return s.Run < o.Run
	}
	return s.Key < o.Key
}
