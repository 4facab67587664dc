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
	"fmt"
	"strconv"

	"github.com/IBM/sarama"
)

// Header is the name of the one record header that carries a message's
// metadata in the header encoding. Its value is the in-body encoding's
// metadata without the payload: "producer/run;sequence;unix-nanos" for a
// message, and for an end-of-stream marker, whose sequence field is the
// count sent on the key, "producer/run;count;unix-nanos;kmt:end". One header
// rather than one per field: sarama encodes every header separately, and
// four of them cost a producer about 5% of its throughput (see
// docs/performance.md).
const Header = "kmt"

// EndPayload is the payload field of an in-body end-of-stream marker.
const EndPayload = "kmt:end"

// Encoding says where a message's metadata lives.
type Encoding int

const (
	// Headers carries the metadata in a Kafka record header (see Header);
	// the value is filler.
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

// MaxSeq is the largest valid sequence (and end-marker count): 2^63-1.
// Decoders reject larger values as ErrBadSequence. The bound leaves every
// half-open range [lo, seq+1) the accounting builds representable in a
// uint64 with room to spare, keeps sequences exact in signed 64-bit and
// JSON tooling that reads reports, and is far beyond what a producer sends
// (2^63 messages on one key at a million a second take 292,000 years).
const MaxSeq = 1<<63 - 1

// MaxIDLen is the longest producer or run id, in bytes.
const MaxIDLen = 200

// Errors returned by the decoders. Records that fail are foreign or malformed:
// the consumer counts and skips them.
var (
	ErrNoKey       = errors.New("record key is not a kmt key index")
	ErrNoMetadata  = errors.New("record carries no kmt metadata")
	ErrBadSequence = errors.New("kmt sequence is not a decimal number up to 2^63-1")
	ErrBadTime     = errors.New("kmt timestamp is not a decimal number")
	ErrBadIdentity = errors.New("kmt producer or run id is empty or malformed")
)

// errHeaderTail is returned for a kmt header with a fourth field other
// than EndPayload.
var errHeaderTail = fmt.Errorf("%w: the kmt header has a field after the timestamp other than %q", ErrNoMetadata, EndPayload)

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
// most MaxIDLen (200) bytes, and free of the separators ';' and '/' and of
// control bytes (below 0x20, and 0x7f). It is the one identity rule: the
// producer refuses an id that breaks it, and the decoders reject a record
// whose producer or run id breaks it (ErrBadIdentity).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ';' || c == '/' || isControl(c) {
			return false
		}
	}
	return true
}

// isControl reports whether c is an ASCII control byte.
func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

// Classes of the bytes of a producer/run identity, for decodeMeta's scan.
const (
	idPlain = iota
	idSlash
	idEnd
	idControl
)

// idClass classifies every byte value for decodeMeta's identity scan.
var idClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '/':
			t[c] = idSlash
		case c == ';':
			t[c] = idEnd
		case isControl(byte(c)):
			t[c] = idControl
		}
	}
	return t
}()

// AppendKey appends the record key for key index k.
func AppendKey(dst []byte, k uint32) []byte {
	return strconv.AppendUint(dst, uint64(k), 10)
}

// ParseKey parses a record key written by AppendKey.
func ParseKey(b []byte) (uint32, error) {
	v, rest, _, ok := number(b, true)
	if !ok || rest != nil || v > 1<<32-1 {
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
	return append(appendMeta(dst, producer, run, seq, unixNano), ';')
}

// AppendEndBody appends an in-body end-of-stream marker saying count messages
// were sent on the key.
func AppendEndBody(dst []byte, producer, run string, count uint64, unixNano int64) []byte {
	return append(AppendBodyPrefix(dst, producer, run, count, unixNano), EndPayload...)
}

// appendMeta appends "producer/run;seq;unix-nanos".
func appendMeta(dst []byte, producer, run string, seq uint64, unixNano int64) []byte {
	dst = append(dst, producer...)
	dst = append(dst, '/')
	dst = append(dst, run...)
	dst = append(dst, ';')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ';')
	return strconv.AppendInt(dst, unixNano, 10)
}

// MaxHeaderLen returns the longest Header value a producer with ids of
// these lengths writes for a message (not an end marker): both numbers at
// 20 digits.
func MaxHeaderLen(producer, run string) int {
	return len(producer) + 1 + len(run) + 1 + 20 + 1 + 20
}

// AppendHeaderValue appends the value of the Header record header; end
// marks an end-of-stream marker whose seq is the count sent.
func AppendHeaderValue(dst []byte, producer, run string, seq uint64, unixNano int64, end bool) []byte {
	if end {
		return AppendEndBody(dst, producer, run, seq, unixNano)
	}
	return appendMeta(dst, producer, run, seq, unixNano)
}

// NewHeaders returns the record headers of a message: the Header header,
// its value freshly allocated. end marks an end-of-stream marker whose seq
// is the count sent.
func NewHeaders(producer, run string, seq uint64, unixNano int64, end bool) []sarama.RecordHeader {
	v := AppendHeaderValue(make([]byte, 0, MaxHeaderLen(producer, run)+len(";"+EndPayload)), producer, run, seq, unixNano, end)
	return []sarama.RecordHeader{{Key: []byte(Header), Value: v}}
}

// DecodeHeaders decodes a header-encoded record into m: the first header
// named Header carries the metadata, other headers are ignored.
func DecodeHeaders(key []byte, headers []*sarama.RecordHeader, m *Meta) error {
	k, err := ParseKey(key)
	if err != nil {
		return err
	}
	*m = Meta{Key: k}
	for _, h := range headers {
		if h == nil || string(h.Key) != Header {
			continue
		}
		return decodeMeta(m, h.Value, true)
	}
	return ErrNoMetadata
}

// DecodeBody decodes an in-body encoded record into m.
func DecodeBody(key, value []byte, m *Meta) error {
	k, err := ParseKey(key)
	if err != nil {
		return err
	}
	*m = Meta{Key: k}
	return decodeMeta(m, value, false)
}

// decodeMeta decodes v into m's identity, sequence, time and end flag. v is
// an in-body value, "producer/run;seq;unix-nanos;payload", or with header
// the Header value, "producer/run;seq;unix-nanos" and on an end marker
// ";kmt:end" after that. The identity is scanned once, for both
// separators and ValidID's control bytes: this is the consumer's hot path.
func decodeMeta(m *Meta, v []byte, header bool) error {
	slash, slashes, i := -1, 0, 0
	control := false
scan:
	for ; i < len(v); i++ {
		switch idClass[v[i]] { // one load and one compare for ordinary bytes
		case idPlain:
		case idSlash:
			if slash < 0 {
				slash = i
			}
			slashes++
		case idEnd:
			break scan
		default:
			control = true
		}
	}
	if i == len(v) {
		return ErrNoMetadata
	}
	id := v[:i]
	seq, rest, found, seqOK := number(v[i+1:], false)
	if !found {
		return ErrNoMetadata
	}
	ts, rest, found, tsOK := number(rest, header)
	switch {
	case !found:
		return ErrNoMetadata
	case rest != nil:
		m.End = string(rest) == EndPayload
		if header && !m.End {
			return errHeaderTail
		}
	}
	if slashes != 1 || slash == 0 || slash == len(id)-1 || control || slash > MaxIDLen || len(id)-slash-1 > MaxIDLen {
		return ErrBadIdentity
	}
	m.Producer, m.Run = id[:slash], id[slash+1:]
	if !seqOK || seq > MaxSeq {
		return ErrBadSequence
	}
	if !tsOK || ts > 1<<63-1 {
		return ErrBadTime
	}
	m.Seq, m.UnixNano = seq, int64(ts)
	return nil
}

// number parses the field at the start of b, a canonical decimal number
// (no sign, no leading zeros except "0" itself) that fits in a uint64,
// in one pass. The field ends at the first ';' or, when atEnd, may end b.
// found reports whether it ended so; rest is what follows the ';' (nil
// when the field ends b); ok whether the field is such a number.
func number(b []byte, atEnd bool) (v uint64, rest []byte, found, ok bool) {
	n := 0
	ok = true
	for ; n < len(b); n++ {
		d := uint64(b[n] - '0')
		if d > 9 {
			break
		}
		if n >= 19 && v > (1<<64-1-d)/10 { // 19 digits always fit
			ok = false // overflows; v is meaningless from here on
		}
		v = v*10 + d
	}
	if n == 0 || (n > 1 && b[0] == '0') {
		ok = false
	}
	switch {
	case n == len(b):
		return v, nil, atEnd, ok
	case b[n] == ';':
		return v, b[n+1:], true, ok
	}
	// Something other than a digit: not a number; find where the field ends.
	if j := indexByte(b[n:], ';'); j >= 0 {
		return 0, b[n+j+1:], true, false
	}
	return 0, nil, atEnd, false
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
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
