package message

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/IBM/sarama"
)

func ptrs(hs []sarama.RecordHeader) []*sarama.RecordHeader {
	out := make([]*sarama.RecordHeader, len(hs))
	for i := range hs {
		out[i] = &hs[i]
	}
	return out
}

func TestKey(t *testing.T) {
	for _, k := range []uint32{0, 1, 9, 10, 4294967295} {
		b := AppendKey(nil, k)
		if string(b) != strconv.FormatUint(uint64(k), 10) {
			t.Errorf("AppendKey(%d) = %q", k, b)
		}
		got, err := ParseKey(b)
		if err != nil || got != k {
			t.Errorf("ParseKey(%q) = %d, %v", b, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "01", "4294967296", "1a", " 1", "99999999999999999999999"} {
		if _, err := ParseKey([]byte(bad)); !errors.Is(err, ErrNoKey) {
			t.Errorf("ParseKey(%q) err = %v, want ErrNoKey", bad, err)
		}
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	for _, end := range []bool{false, true} {
		hs := NewHeaders("prod-1", "r42", 123456, 1700000000123456789, end)
		var m Meta
		if err := DecodeHeaders([]byte("7"), ptrs(hs), &m); err != nil {
			t.Fatalf("end=%v: %v", end, err)
		}
		if string(m.Producer) != "prod-1" || string(m.Run) != "r42" || m.Key != 7 || m.Seq != 123456 ||
			m.UnixNano != 1700000000123456789 || m.End != end {
			t.Fatalf("end=%v: decoded %+v", end, m)
		}
	}
}

func TestDecodeHeadersErrors(t *testing.T) {
	good := NewHeaders("p", "r", 1, 2, false)
	without := func(name string) []sarama.RecordHeader {
		var out []sarama.RecordHeader
		for _, h := range good {
			if string(h.Key) != name {
				out = append(out, h)
			}
		}
		return out
	}
	with := func(name, value string) []sarama.RecordHeader {
		out := append([]sarama.RecordHeader(nil), good...)
		for i := range out {
			if string(out[i].Key) == name {
				out[i].Value = []byte(value)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		key     string
		headers []sarama.RecordHeader
		want    error
	}{
		{"no key", "", good, ErrNoKey},
		{"text key", "abc", good, ErrNoKey},
		{"no headers", "1", nil, ErrNoMetadata},
		{"foreign headers only", "1", []sarama.RecordHeader{{Key: []byte("trace-id"), Value: []byte("x")}}, ErrNoMetadata},
		{"missing producer", "1", without(HeaderProducer), ErrNoMetadata},
		{"missing run", "1", without(HeaderRun), ErrNoMetadata},
		{"missing seq", "1", without(HeaderSeq), ErrNoMetadata},
		{"missing time", "1", without(HeaderTime), ErrNoMetadata},
		{"empty producer", "1", with(HeaderProducer, ""), ErrBadIdentity},
		{"slash in run", "1", with(HeaderRun, "a/b"), ErrBadIdentity},
		{"negative seq", "1", with(HeaderSeq, "-1"), ErrBadSequence},
		{"seq leading zero", "1", with(HeaderSeq, "01"), ErrBadSequence},
		{"seq overflow", "1", with(HeaderSeq, "18446744073709551616"), ErrBadSequence},
		{"time not a number", "1", with(HeaderTime, "now"), ErrBadTime},
		{"time overflows int64", "1", with(HeaderTime, "9223372036854775808"), ErrBadTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Meta
			hs := ptrs(tt.headers)
			hs = append(hs, nil) // nil headers are skipped, never dereferenced
			if err := DecodeHeaders([]byte(tt.key), hs, &m); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBodyRoundTrip(t *testing.T) {
	filler := bytes.Repeat([]byte{'x'}, 2000)
	for _, size := range []int{0, 10, 40, 100, 1000} {
		v := AppendBody([]byte("pre"), "prod-1", "r42", 99, 1700000000000000001, size, filler)[3:]
		if meta := len("prod-1/r42;99;1700000000000000001;"); size >= meta && len(v) != size {
			t.Errorf("size %d: value is %d bytes", size, len(v))
		}
		var m Meta
		if err := DecodeBody([]byte("3"), v, &m); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if string(m.Producer) != "prod-1" || string(m.Run) != "r42" || m.Key != 3 || m.Seq != 99 ||
			m.UnixNano != 1700000000000000001 || m.End {
			t.Fatalf("size %d: decoded %+v", size, m)
		}
	}
	end := AppendEndBody(nil, "p", "r", 500, 42)
	var m Meta
	if err := DecodeBody([]byte("0"), end, &m); err != nil || !m.End || m.Seq != 500 || m.UnixNano != 42 {
		t.Fatalf("end marker decoded %+v, %v", m, err)
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	tests := []struct {
		name, key, value string
		want             error
	}{
		{"bad key", "x", "p/r;1;2;", ErrNoKey},
		{"random text", "1", "hello world", ErrNoMetadata},
		{"two fields", "1", "p/r;1", ErrNoMetadata},
		{"three fields no trailing separator", "1", "p/r;1;2", ErrNoMetadata},
		{"no run", "1", "p;1;2;", ErrBadIdentity},
		{"empty producer", "1", "/r;1;2;", ErrBadIdentity},
		{"empty run", "1", "p/;1;2;", ErrBadIdentity},
		{"two slashes", "1", "p/r/x;1;2;", ErrBadIdentity},
		{"bad seq", "1", "p/r;x;2;", ErrBadSequence},
		{"empty seq", "1", "p/r;;2;", ErrBadSequence},
		{"bad time", "1", "p/r;1;-5;", ErrBadTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Meta
			if err := DecodeBody([]byte(tt.key), []byte(tt.value), &m); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for _, ok := range []string{"a", "host-1.example", "r_1:2"} {
		if !ValidID(ok) {
			t.Errorf("ValidID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a;b", "a/b", "a\nb", "a\x7fb", string(bytes.Repeat([]byte{'a'}, 201))} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestStreamIDString(t *testing.T) {
	id := StreamID{Topic: "t", Producer: "p", Run: "r", Key: 12}
	if got := id.String(); got != "t/p/r/12" {
		t.Fatalf("String = %q", got)
	}
}

func TestEncodingString(t *testing.T) {
	if Headers.String() != "headers" || Body.String() != "body" {
		t.Fatal(Headers.String(), Body.String())
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	hs := ptrs(NewHeaders("producer-1", "run-1", 12345, 1700000000000000000, false))
	body := AppendBody(nil, "producer-1", "run-1", 12345, 1700000000000000000, 100, bytes.Repeat([]byte{'x'}, 100))
	key := []byte("17")
	var m Meta
	if n := testing.AllocsPerRun(100, func() { _ = DecodeHeaders(key, hs, &m) }); n != 0 {
		t.Errorf("DecodeHeaders allocates %.1f times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = DecodeBody(key, body, &m) }); n != 0 {
		t.Errorf("DecodeBody allocates %.1f times", n)
	}
}

// FuzzDecodeHeaders checks that a header-encoded message survives encoding
// and decoding unchanged, and that arbitrary header bytes never panic.
func FuzzDecodeHeaders(f *testing.F) {
	f.Add("p", "r", uint64(0), int64(0), false, uint32(0), []byte("kmt-seq"), []byte("12"))
	f.Add("producer-1", "run-abc", uint64(1<<63), int64(1700000000000000000), true, uint32(7), []byte("kmt-ts"), []byte("-1"))
	f.Add("h", "x", uint64(5), int64(-3), false, uint32(4294967295), []byte{0xff, 0}, []byte{})
	f.Fuzz(func(t *testing.T, producer, run string, seq uint64, ts int64, end bool, key uint32, hk, hv []byte) {
		// Arbitrary input: the raw bytes as key, a header, and a record whose
		// kmt header is overwritten by the fuzzed one. Must not panic.
		var m Meta
		_ = DecodeHeaders(hk, []*sarama.RecordHeader{{Key: hk, Value: hv}, nil}, &m)
		hs := NewHeaders(producer, run, seq, ts, end)
		mixed := append(ptrs(hs), &sarama.RecordHeader{Key: hk, Value: hv})
		_ = DecodeHeaders(hv, mixed, &m)

		if !ValidID(producer) || !ValidID(run) || ts < 0 {
			return
		}
		// Round trip: valid input decodes to exactly what was encoded.
		if err := DecodeHeaders(AppendKey(nil, key), ptrs(NewHeaders(producer, run, seq, ts, end)), &m); err != nil {
			t.Fatalf("round trip of %q %q %d %d: %v", producer, run, seq, ts, err)
		}
		if string(m.Producer) != producer || string(m.Run) != run || m.Seq != seq || m.UnixNano != ts || m.End != end || m.Key != key {
			t.Fatalf("round trip of %q %q %d %d %v %d decoded %+v", producer, run, seq, ts, end, key, m)
		}
	})
}

// FuzzDecodeBody checks that an in-body message survives encoding and
// decoding unchanged, and that arbitrary values never panic.
func FuzzDecodeBody(f *testing.F) {
	f.Add("p", "r", uint64(0), int64(0), 0, uint32(0), []byte("p/r;1;2;payload"))
	f.Add("producer-1", "run-abc", uint64(1<<40), int64(1700000000000000000), 1000, uint32(3), []byte("garbage;;;"))
	f.Add("a", "b", uint64(18446744073709551615), int64(9223372036854775807), 5, uint32(1), []byte{0, ';', '/', 0xff})
	f.Add("a", "b", uint64(3), int64(4), -1, uint32(1), []byte("a/b;3;4;kmt:end"))
	f.Fuzz(func(t *testing.T, producer, run string, seq uint64, ts int64, size int, key uint32, raw []byte) {
		var m Meta
		_ = DecodeBody(raw, raw, &m) // arbitrary bytes: must not panic
		_ = DecodeBody([]byte("1"), raw, &m)

		if !ValidID(producer) || !ValidID(run) || ts < 0 {
			return
		}
		size = size % 4096
		if size < 0 {
			size = -size
		}
		filler := bytes.Repeat([]byte{'.'}, size)
		v := AppendBody(nil, producer, run, seq, ts, size, filler)
		if err := DecodeBody(AppendKey(nil, key), v, &m); err != nil {
			t.Fatalf("round trip of %q %q %d %d: %v", producer, run, seq, ts, err)
		}
		if string(m.Producer) != producer || string(m.Run) != run || m.Seq != seq || m.UnixNano != ts || m.Key != key || m.End {
			t.Fatalf("round trip decoded %+v", m)
		}
		e := AppendEndBody(nil, producer, run, seq, ts)
		if err := DecodeBody(AppendKey(nil, key), e, &m); err != nil || !m.End || m.Seq != seq {
			t.Fatalf("end marker round trip: %+v, %v", m, err)
		}
	})
}

func BenchmarkDecodeHeaders(b *testing.B) {
	hs := ptrs(NewHeaders("producer-1", "run-1", 12345, 1700000000000000000, false))
	key := []byte("17")
	var m Meta
	b.ReportAllocs()
	for b.Loop() {
		_ = DecodeHeaders(key, hs, &m)
	}
}

func BenchmarkDecodeBody(b *testing.B) {
	v := AppendBody(nil, "producer-1", "run-1", 12345, 1700000000000000000, 1000, bytes.Repeat([]byte{'x'}, 1000))
	key := []byte("17")
	var m Meta
	b.ReportAllocs()
	for b.Loop() {
		_ = DecodeBody(key, v, &m)
	}
}
