package seqrange

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

func TestAddRangeMerges(t *testing.T) {
	tests := []struct {
		name string
		add  []Range
		want []Range
	}{
		{"empty", nil, nil},
		{"empty range ignored", []Range{{5, 5}, {7, 3}}, nil},
		{"single", []Range{{3, 7}}, []Range{{3, 7}}},
		{"adjacent in order", []Range{{0, 3}, {3, 6}}, []Range{{0, 6}}},
		{"adjacent reversed", []Range{{3, 6}, {0, 3}}, []Range{{0, 6}}},
		{"disjoint reversed", []Range{{10, 12}, {0, 2}, {5, 6}}, []Range{{0, 2}, {5, 6}, {10, 12}}},
		{"overlap spanning several", []Range{{0, 2}, {4, 6}, {8, 10}, {1, 9}}, []Range{{0, 10}}},
		{"inside existing", []Range{{0, 10}, {3, 4}}, []Range{{0, 10}}},
		{"touching both neighbours", []Range{{0, 2}, {4, 6}, {2, 4}}, []Range{{0, 6}}},
		{"extends last", []Range{{0, 2}, {5, 7}, {6, 9}}, []Range{{0, 2}, {5, 9}}},
		{"fills middle gap only", []Range{{0, 2}, {5, 7}, {10, 12}, {6, 8}}, []Range{{0, 2}, {5, 8}, {10, 12}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Of(tt.add...)
			if got := s.Ranges(); !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("ranges = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSetOperations(t *testing.T) {
	a := Of(Range{0, 10}, Range{20, 30})
	b := Of(Range{5, 25}, Range{29, 40})
	if got, want := a.Minus(b).String(), "0-4,25-28"; got != want {
		t.Errorf("a-b = %s, want %s", got, want)
	}
	if got, want := b.Minus(a).String(), "10-19,30-39"; got != want {
		t.Errorf("b-a = %s, want %s", got, want)
	}
	if got, want := a.Intersect(b).String(), "5-9,20-24,29"; got != want {
		t.Errorf("a&b = %s, want %s", got, want)
	}
	u := a
	u.rs = append([]Range(nil), a.rs...)
	u.Union(b)
	if got, want := u.String(), "0-39"; got != want {
		t.Errorf("a|b = %s, want %s", got, want)
	}
	if a.Len() != 20 || a.Max() != 30 || a.NumRanges() != 2 || a.Empty() {
		t.Errorf("a: len %d max %d ranges %d empty %v", a.Len(), a.Max(), a.NumRanges(), a.Empty())
	}
	var z Set
	if !z.Empty() || z.Max() != 0 || z.Len() != 0 || z.Contains(0) || z.String() != "" {
		t.Errorf("zero set is not empty: %v", z)
	}
}

func TestRangeString(t *testing.T) {
	if got := (Range{4, 5}).String(); got != "4" {
		t.Errorf("single = %q", got)
	}
	if got := (Range{4, 9}).String(); got != "4-8" {
		t.Errorf("range = %q", got)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	s := Of(Range{0, 3}, Range{7, 8}, Range{1 << 40, 1<<40 + 5})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"lo":0,"hi":3},{"lo":7,"hi":8},{"lo":1099511627776,"hi":1099511627781}]`; string(b) != want {
		t.Fatalf("marshal = %s, want %s", b, want)
	}
	var back Set
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Ranges(), s.Ranges()) {
		t.Fatalf("round trip = %v, want %v", back, s)
	}

	// Inside a struct, with null and with unsorted overlapping input.
	var v struct {
		A Set `json:"a"`
		B Set `json:"b"`
	}
	if err := json.Unmarshal([]byte(`{"a":null,"b":[{"lo":5,"hi":9},{"lo":0,"hi":6},{"lo":20,"hi":20}]}`), &v); err != nil {
		t.Fatal(err)
	}
	if !v.A.Empty() || v.B.String() != "0-8" {
		t.Fatalf("decoded a=%v b=%v", v.A, v.B)
	}
	if b, _ := json.Marshal(Set{}); string(b) != "[]" {
		t.Fatalf("empty set marshals to %s", b)
	}
}

func TestUnmarshalJSONErrors(t *testing.T) {
	for _, in := range []string{`{"lo":1}`, `[{"lo":5,"hi":2}]`, `[{"lo":-1,"hi":2}]`, `"x"`} {
		var s Set
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("unmarshal %s: no error, got %v", in, s)
		}
	}
}

// model is the obviously correct reference: a set as a map.
type model map[uint64]bool

func (m model) ranges() []Range {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var out []Range
	for _, k := range keys {
		if n := len(out); n > 0 && out[n-1].Hi == k {
			out[n-1].Hi++
			continue
		}
		out = append(out, Range{k, k + 1})
	}
	return out
}

// checkAgainst compares s with the model over the whole universe.
func checkAgainst(t *testing.T, step string, s Set, m model, universe uint64) {
	t.Helper()
	for v := uint64(0); v < universe+2; v++ {
		if s.Contains(v) != m[v] {
			t.Fatalf("%s: Contains(%d) = %v, model %v; set %v", step, v, s.Contains(v), m[v], s)
		}
	}
	if s.Len() != uint64(len(m)) {
		t.Fatalf("%s: Len = %d, model %d", step, s.Len(), len(m))
	}
	got, want := s.Ranges(), m.ranges()
	if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("%s: ranges %v, model %v", step, got, want)
	}
	for i, r := range got { // invariants: sorted, disjoint, non-adjacent, non-empty
		if r.Hi <= r.Lo || (i > 0 && got[i-1].Hi >= r.Lo) {
			t.Fatalf("%s: invariant broken at %d: %v", step, i, got)
		}
	}
	var max uint64
	for k := range m {
		if k+1 > max {
			max = k + 1
		}
	}
	if s.Max() != max {
		t.Fatalf("%s: Max = %d, model %d", step, s.Max(), max)
	}
}

// randomSet builds a set and its model from n random ranges in [0, universe).
func randomSet(r *rand.Rand, n int, universe uint64) (Set, model) {
	var s Set
	m := model{}
	for range n {
		lo := r.Uint64N(universe)
		hi := lo + r.Uint64N(8)
		if r.IntN(4) == 0 {
			s.Add(lo)
			m[lo] = true
			continue
		}
		s.AddRange(lo, hi)
		for v := lo; v < hi; v++ {
			m[v] = true
		}
	}
	return s, m
}

// TestPropertyAgainstModel runs random operations on Sets and on the map
// model and requires identical membership, length, ranges and results.
func TestPropertyAgainstModel(t *testing.T) {
	const universe = 120
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		a, ma := randomSet(r, r.IntN(20), universe)
		checkAgainst(t, "build a", a, ma, universe)
		b, mb := randomSet(r, r.IntN(20), universe)

		minus := a.Minus(b)
		mm := model{}
		for k := range ma {
			if !mb[k] {
				mm[k] = true
			}
		}
		checkAgainst(t, "minus", minus, mm, universe)

		inter := a.Intersect(b)
		mi := model{}
		for k := range ma {
			if mb[k] {
				mi[k] = true
			}
		}
		checkAgainst(t, "intersect", inter, mi, universe)

		u := Of(a.Ranges()...)
		u.Union(b)
		mu := model{}
		for k := range ma {
			mu[k] = true
		}
		for k := range mb {
			mu[k] = true
		}
		checkAgainst(t, "union", u, mu, universe)
		// Union must not have changed a (it shares no storage).
		checkAgainst(t, "a after union", a, ma, universe)

		raw, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		var back Set
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("iter %d: unmarshal %s: %v", iter, raw, err)
		}
		checkAgainst(t, "json", back, mu, universe)
	}
}

func BenchmarkAddInOrder(b *testing.B) {
	b.ReportAllocs()
	var s Set
	for i := range b.N {
		s.Add(uint64(i))
	}
}

// TestBoundaries checks that no operation wraps at the top of the uint64
// range: the largest uint64 is outside the domain and ignored, and a
// range ending at 2^64-1 has its exact length.
func TestBoundaries(t *testing.T) {
	const top = 1<<64 - 1
	var s Set
	s.Add(top)
	if !s.Empty() || s.Len() != 0 {
		t.Fatalf("Add(2^64-1) gave %v (len %d)", s, s.Len())
	}
	s.Add(top - 1)
	s.AddRange(0, 2)
	if got := s.String(); got != "0-1,18446744073709551614" {
		t.Fatalf("set %q", got)
	}
	if s.Len() != 3 || !s.Contains(top-1) || s.Contains(top) {
		t.Fatalf("len %d, contains top-1 %v, top %v", s.Len(), s.Contains(top-1), s.Contains(top))
	}
	if n := (Range{Lo: 5, Hi: 3}).Len(); n != 0 {
		t.Errorf("Len of an inverted range = %d", n)
	}
	all := Of(Range{Lo: 0, Hi: top})
	if all.Len() != top {
		t.Errorf("Len of [0, 2^64-1) = %d", all.Len())
	}
	rest := all.Minus(Of(Range{Lo: 1, Hi: top}))
	if rest.String() != "0" {
		t.Errorf("minus = %v", rest)
	}
}
