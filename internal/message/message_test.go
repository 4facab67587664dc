package message

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
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
	for _, bad := range []string{"", "-1", "01", "4294967296", "1a", " 1", "1;", "1;2", ";", "99999999999999999999999"} {
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

func TestHeaderValue(t *testing.T) {
	hs := NewHeaders("prod-1", "r42", 123456, 1700000000123456789, false)
	if len(hs) != 1 || string(hs[0].Key) != "kmt" || string(hs[0].Value) != "prod-1/r42;123456;1700000000123456789" {
		t.Errorf("message headers = %q", hs)
	}
	hs = NewHeaders("prod-1", "r42", 600, 1700000000123456789, true)
	if len(hs) != 1 || string(hs[0].Key) != "kmt" || string(hs[0].Value) != "prod-1/r42;600;1700000000123456789;kmt:end" {
		t.Errorf("end marker headers = %q", hs)
	}
	// The longest message value fits MaxHeaderLen exactly.
	if v := AppendHeaderValue(nil, "p", "run", 1<<64-1, 1<<63-1, false); len(v) > MaxHeaderLen("p", "run") {
		t.Errorf("%q is %d bytes, MaxHeaderLen %d", v, len(v), MaxHeaderLen("p", "run"))
	}
	if got, want := MaxHeaderLen("p", "run"), len("p/run;18446744073709551615;18446744073709551615"); got != want {
		t.Errorf("MaxHeaderLen = %d, want %d", got, want)
	}
}

func TestDecodeHeadersErrors(t *testing.T) {
	kmt := func(value string) []sarama.RecordHeader {
		return []sarama.RecordHeader{{Key: []byte("trace-id"), Value: []byte("x")}, {Key: []byte("kmt"), Value: []byte(value)}}
	}
	good := kmt("p/r;1;2")
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
		{"header name differs in case", "1", []sarama.RecordHeader{{Key: []byte("KMT"), Value: []byte("p/r;1;2")}}, ErrNoMetadata},
		{"four separate headers (not the format)", "1", []sarama.RecordHeader{
			{Key: []byte("kmt-producer"), Value: []byte("p")}, {Key: []byte("kmt-run"), Value: []byte("r")},
			{Key: []byte("kmt-seq"), Value: []byte("1")}, {Key: []byte("kmt-ts"), Value: []byte("2")}}, ErrNoMetadata},
		{"empty value", "1", kmt(""), ErrNoMetadata},
		{"one field", "1", kmt("p/r"), ErrNoMetadata},
		{"two fields", "1", kmt("p/r;1"), ErrNoMetadata},
		{"trailing separator", "1", kmt("p/r;1;2;"), ErrNoMetadata},
		{"unknown fourth field", "1", kmt("p/r;1;2;payload"), ErrNoMetadata},
		{"five fields", "1", kmt("p/r;1;2;kmt:end;x"), ErrNoMetadata},
		{"no run", "1", kmt("p;1;2"), ErrBadIdentity},
		{"empty producer", "1", kmt("/r;1;2"), ErrBadIdentity},
		{"empty run", "1", kmt("p/;1;2"), ErrBadIdentity},
		{"slash in run", "1", kmt("p/a/b;1;2"), ErrBadIdentity},
		{"negative seq", "1", kmt("p/r;-1;2"), ErrBadSequence},
		{"seq leading zero", "1", kmt("p/r;01;2"), ErrBadSequence},
		{"empty seq", "1", kmt("p/r;;2"), ErrBadSequence},
		{"seq overflow", "1", kmt("p/r;18446744073709551616;2"), ErrBadSequence},
		{"seq largest uint64", "1", kmt("p/r;18446744073709551615;2"), ErrBadSequence},
		{"seq MaxSeq+1", "1", kmt("p/r;9223372036854775808;2"), ErrBadSequence},
		{"end count MaxSeq+1", "1", kmt("p/r;9223372036854775808;2;kmt:end"), ErrBadSequence},
		{"producer id over 200 bytes", "1", kmt(strings.Repeat("p", 201) + "/r;1;2"), ErrBadIdentity},
		{"run id over 200 bytes", "1", kmt("p/" + strings.Repeat("r", 201) + ";1;2"), ErrBadIdentity},
		{"control byte in producer id", "1", kmt("p\x00q/r;1;2"), ErrBadIdentity},
		{"newline in run id", "1", kmt("p/r\n;1;2"), ErrBadIdentity},
		{"DEL in producer id", "1", kmt("p\x7f/r;1;2"), ErrBadIdentity},
		{"time not a number", "1", kmt("p/r;1;now"), ErrBadTime},
		{"empty time", "1", kmt("p/r;1;"), ErrBadTime},
		{"time overflows int64", "1", kmt("p/r;1;9223372036854775808"), ErrBadTime},
		{"first kmt header decides", "1", append(kmt("p/r;x;2"), good...), ErrBadSequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Meta
			hs := ptrs(tt.headers)
			hs = append([]*sarama.RecordHeader{nil}, hs...) // nil headers are skipped, never dereferenced
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

// TestDecodeIdentityRule checks that the decoders accept exactly the
// producer and run ids the producer accepts (ValidID), and the sequences up
// to MaxSeq.
func TestDecodeIdentityRule(t *testing.T) {
	ids := []string{"a", "host-1.example", "r_1:2", strings.Repeat("x", 200), strings.Repeat("x", 201),
		"a\tb", "a\x00", "\x1f", "a\x7f", "caf\xc3\xa9", "a b", "\xff"}
	for _, id := range ids {
		for _, asRun := range []bool{false, true} {
			producer, run := id, "r"
			if asRun {
				producer, run = "p", id
			}
			var m Meta
			hdr := []*sarama.RecordHeader{{Key: []byte(Header), Value: []byte(producer + "/" + run + ";1;2")}}
			errH := DecodeHeaders([]byte("1"), hdr, &m)
			errB := DecodeBody([]byte("1"), []byte(producer+"/"+run+";1;2;x"), &m)
			for _, err := range []error{errH, errB} {
				if ValidID(id) != (err == nil) || (err != nil && !errors.Is(err, ErrBadIdentity)) {
					t.Errorf("id %q (run %v): ValidID %v, decode error %v", id, asRun, ValidID(id), err)
				}
			}
		}
	}
	var m Meta
	if err := DecodeBody([]byte("1"), []byte("p/r;9223372036854775807;2;x"), &m); err != nil || m.Seq != MaxSeq {
		t.Errorf("MaxSeq: seq %d, err %v", m.Seq, err)
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
	f.Add("p", "r", uint64(0), int64(0), false, uint32(0), []byte("kmt"), []byte("p/r;12;1"))
	f.Add("producer-1", "run-abc", uint64(1<<63), int64(1700000000000000000), true, uint32(7), []byte("kmt"), []byte("a/b;1;-1;kmt:end"))
	f.Add("p", "r", uint64(1), int64(2), false, uint32(1), []byte("kmt-seq"), []byte("12"))
	f.Add("h", "x", uint64(5), int64(-3), false, uint32(4294967295), []byte{0xff, 0}, []byte{})
	f.Fuzz(func(t *testing.T, producer, run string, seq uint64, ts int64, end bool, key uint32, hk, hv []byte) {
		// Arbitrary input: the raw bytes as key, a header, and a record
		// whose kmt header follows the fuzzed one (which decides when it
		// is named kmt). Must not panic.
		var m Meta
		_ = DecodeHeaders(hk, []*sarama.RecordHeader{{Key: hk, Value: hv}, nil}, &m)
		_ = DecodeHeaders([]byte("1"), []*sarama.RecordHeader{{Key: []byte(Header), Value: hv}}, &m)
		hs := NewHeaders(producer, run, seq, ts, end)
		mixed := append([]*sarama.RecordHeader{{Key: hk, Value: hv}}, ptrs(hs)...)
		_ = DecodeHeaders(hv, mixed, &m)

		if !ValidID(producer) || !ValidID(run) || ts < 0 {
			return
		}
		if seq > MaxSeq {
			// Beyond the largest valid sequence: refused, never wrapped.
			if err := DecodeBody(AppendKey(nil, key), AppendBody(nil, producer, run, seq, ts, 0, nil), &m); !errors.Is(err, ErrBadSequence) {
				t.Fatalf("sequence %d above MaxSeq decoded with error %v", seq, err)
			}
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
		if seq > MaxSeq {
			// Beyond the largest valid sequence: refused, never wrapped.
			if err := DecodeBody(AppendKey(nil, key), AppendBody(nil, producer, run, seq, ts, 0, nil), &m); !errors.Is(err, ErrBadSequence) {
				t.Fatalf("sequence %d above MaxSeq decoded with error %v", seq, err)
			}
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

// TestNumberAgreesWithStrconv checks the one-pass field parser against
// strconv.ParseUint plus the canonical-form rule, around the uint64 limit
// where it starts checking for overflow.
func TestNumberAgreesWithStrconv(t *testing.T) {
	for _, s := range []string{"0", "7", "00", "01", "10", "", "-1", "+1", "1x",
		"999999999999999999", "9999999999999999999", "10000000000000000000",
		"18446744073709551615", "18446744073709551616", "18446744073709551620", "19999999999999999999",
		"99999999999999999999", "100000000000000000000", "184467440737095516150"} {
		want, err := strconv.ParseUint(s, 10, 64)
		wantOK := err == nil && s[0] != '+' && (len(s) == 1 || s[0] != '0')
		for _, sep := range []string{";rest", ""} {
			v, rest, found, ok := number([]byte(s+sep), true)
			if !found || ok != wantOK || (ok && v != want) {
				t.Errorf("number(%q) = %d, found %v, ok %v; want %d, ok %v", s+sep, v, found, ok, want, wantOK)
			}
			if (sep == "" && rest != nil) || (sep != "" && string(rest) != "rest") {
				t.Errorf("number(%q) rest = %q", s+sep, rest)
			}
		}
		if _, _, found, _ := number([]byte(s), false); found {
			t.Errorf("number(%q, atEnd=false) found a field without its ';'", s)
		}
	}
}
