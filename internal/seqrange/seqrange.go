// Package seqrange keeps sets of sequence numbers as sorted, disjoint,
// half-open ranges. Producers record acked sequences with it, consumers the
// sequences they saw, and the final reconciliation subtracts one from the
// other.
package seqrange

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Range is the half-open interval [Lo, Hi). Members run from 0 to
// math.MaxUint64-1: the largest uint64 cannot be the Lo of a non-empty
// half-open range.
type Range struct {
	Lo uint64 `json:"lo"`
	Hi uint64 `json:"hi"`
}

// Len returns the number of sequences in r (0 when Hi <= Lo, never a
// wrapped difference).
func (r Range) Len() uint64 {
	if r.Hi <= r.Lo {
		return 0
	}
	return r.Hi - r.Lo
}

// String formats r as "lo-last" or "n" for a single sequence.
func (r Range) String() string {
	if r.Hi > r.Lo && r.Hi-r.Lo == 1 {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi-1)
}

// Set is a set of sequence numbers. The zero value is empty and ready to use.
// A Set is not safe for concurrent use.
type Set struct {
	rs []Range // sorted, disjoint, non-adjacent, non-empty
}

// Of returns a Set holding the given ranges.
func Of(rs ...Range) Set {
	var s Set
	for _, r := range rs {
		s.AddRange(r.Lo, r.Hi)
	}
	return s
}

// Add adds one sequence number. math.MaxUint64 is outside the domain (see
// Range) and is ignored rather than wrapped into an empty range.
func (s *Set) Add(v uint64) {
	if v == 1<<64-1 {
		return
	}
	s.AddRange(v, v+1)
}

// AddRange adds [lo, hi). It is cheapest when ranges arrive in increasing
// order, as they usually do.
func (s *Set) AddRange(lo, hi uint64) {
	if hi <= lo {
		return
	}
	n := len(s.rs)
	if n == 0 || s.rs[n-1].Hi < lo {
		s.rs = append(s.rs, Range{lo, hi})
		return
	}
	if last := &s.rs[n-1]; last.Lo <= lo { // overlaps or touches the last range
		if hi > last.Hi {
			last.Hi = hi
		}
		return
	}
	// General case: first range whose Hi >= lo, last range whose Lo <= hi.
	i := sort.Search(n, func(i int) bool { return s.rs[i].Hi >= lo })
	j := sort.Search(n, func(j int) bool { return s.rs[j].Lo > hi })
	if i == j {
		s.rs = append(s.rs, Range{})
		copy(s.rs[i+1:], s.rs[i:])
		s.rs[i] = Range{lo, hi}
		return
	}
	merged := Range{min(lo, s.rs[i].Lo), max(hi, s.rs[j-1].Hi)}
	s.rs[i] = merged
	s.rs = append(s.rs[:i+1], s.rs[j:]...)
}

// Contains reports whether v is in the set.
func (s *Set) Contains(v uint64) bool {
	i := sort.Search(len(s.rs), func(i int) bool { return s.rs[i].Hi > v })
	return i < len(s.rs) && s.rs[i].Lo <= v
}

// Len returns how many sequence numbers the set holds.
func (s *Set) Len() uint64 {
	var n uint64
	for _, r := range s.rs {
		n += r.Len()
	}
	return n
}

// Empty reports whether the set holds nothing.
func (s *Set) Empty() bool { return len(s.rs) == 0 }

// Max returns one past the largest member, or 0 for an empty set.
func (s *Set) Max() uint64 {
	if len(s.rs) == 0 {
		return 0
	}
	return s.rs[len(s.rs)-1].Hi
}

// Ranges returns a copy of the set's ranges in increasing order.
func (s *Set) Ranges() []Range { return append([]Range(nil), s.rs...) }

// NumRanges returns how many disjoint ranges the set holds.
func (s *Set) NumRanges() int { return len(s.rs) }

// Union adds every member of o to s.
func (s *Set) Union(o Set) {
	for _, r := range o.rs {
		s.AddRange(r.Lo, r.Hi)
	}
}

// Minus returns the members of s that are not in o.
func (s *Set) Minus(o Set) Set {
	var out Set
	j := 0
	for _, r := range s.rs {
		lo := r.Lo
		for j < len(o.rs) && o.rs[j].Hi <= lo {
			j++
		}
		for k := j; k < len(o.rs) && o.rs[k].Lo < r.Hi; k++ {
			if o.rs[k].Lo > lo {
				out.rs = append(out.rs, Range{lo, o.rs[k].Lo})
			}
			lo = max(lo, o.rs[k].Hi)
		}
		if lo < r.Hi {
			out.rs = append(out.rs, Range{lo, r.Hi})
		}
	}
	return out
}

// Intersect returns the members in both s and o.
func (s *Set) Intersect(o Set) Set {
	minus := s.Minus(o)
	return s.Minus(minus)
}

// String formats the set as "0-9,12,15-20".
func (s Set) String() string {
	parts := make([]string, len(s.rs))
	for i, r := range s.rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// MarshalJSON encodes the set as a list of {lo, hi} ranges.
func (s Set) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range s.rs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"lo":%d,"hi":%d}`, r.Lo, r.Hi)
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
}

// UnmarshalJSON decodes a list of {lo, hi} ranges as written by MarshalJSON.
// The ranges may come in any order and may overlap; they are normalised.
// A range with hi < lo is an error; an empty one (hi == lo) is ignored.
func (s *Set) UnmarshalJSON(b []byte) error {
	var rs []Range
	if err := json.Unmarshal(b, &rs); err != nil {
		return fmt.Errorf("seqrange: decode set: %w", err)
	}
	var out Set
	for i, r := range rs {
		if r.Hi < r.Lo {
			return fmt.Errorf("seqrange: decode set: range %d has hi %d below lo %d", i, r.Hi, r.Lo)
		}
		out.AddRange(r.Lo, r.Hi)
	}
	*s = out
	return nil
}
