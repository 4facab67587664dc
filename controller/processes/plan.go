package processes

import (
	"slices"
	"sort"
)

// Placement is the replica lists of a cluster's partitions by topic, the
// first replica of each list being the preferred leader (Kafka's
// convention, and what a preferred leader election moves leadership to).
type Placement map[string][][]int32

// slot is one partition of a Placement.
type slot struct {
	topic     string
	partition int
}

// slots returns every partition of p, partition 0 of every topic (by
// name) first, then partition 1, and so on: plans are deterministic, and
// the moves a plan makes fall on every topic alike, not all on the first.
func (p Placement) slots() []slot {
	topics := make([]string, 0, len(p))
	most := 0
	for topic, parts := range p {
		topics = append(topics, topic)
		most = max(most, len(parts))
	}
	sort.Strings(topics)
	var out []slot
	for i := range most {
		for _, topic := range topics {
			if i < len(p[topic]) {
				out = append(out, slot{topic, i})
			}
		}
	}
	return out
}

// Balance returns a placement of the partitions of cur over brokers that
// moves as little as it can while spreading both replicas and preferred
// leaderships evenly: afterwards every broker holds within one of the same
// number of replicas and, where the replica lists allow, is the preferred
// leader of within one of the same number of partitions.
//
// leaders are the partitions' current leaders (nil, or -1 for one, when
// unknown); a current leader that is a replica is put first, so leaderships
// that already sit well stay where they are and an election moves only the
// ones the balance needs. A replica on a broker not in brokers is replaced;
// each partition keeps its replication factor, capped at len(brokers).
// Replicas move off the busiest brokers, followers before leaders. The
// result shares nothing with cur; cur is not modified.
func Balance(cur Placement, leaders map[string][]int32, brokers []int32) Placement {
	plan := make(Placement, len(cur))
	for topic, parts := range cur {
		plan[topic] = make([][]int32, len(parts))
	}
	if len(brokers) == 0 {
		for topic, parts := range cur {
			for i, rs := range parts {
				plan[topic][i] = slices.Clone(rs)
			}
		}
		return plan
	}
	order := slices.Clone(brokers)
	slices.Sort(order)
	order = slices.Compact(order)
	slots := plan.slots()
	replicas := map[int32]int{} // replicas per broker
	leads := map[int32]int{}    // preferred leaderships per broker
	for _, b := range order {
		replicas[b], leads[b] = 0, 0
	}

	// Keep what can stay: the current leader first, replicas on departed
	// brokers out.
	want := map[slot]int{}
	for _, s := range slots {
		rs := slices.Clone(cur[s.topic][s.partition])
		if ls := leaders[s.topic]; s.partition < len(ls) {
			if i := slices.Index(rs, ls[s.partition]); i > 0 {
				l := rs[i]
				copy(rs[1:i+1], rs[:i])
				rs[0] = l
			}
		}
		want[s] = min(len(rs), len(order))
		var kept []int32
		for _, b := range rs {
			if _, ok := replicas[b]; ok && !slices.Contains(kept, b) && len(kept) < want[s] {
				kept = append(kept, b)
				replicas[b]++
			}
		}
		plan[s.topic][s.partition] = kept
	}

	// Replace what left: the least loaded broker not yet a replica.
	for _, s := range slots {
		for len(plan[s.topic][s.partition]) < want[s] {
			rs := plan[s.topic][s.partition]
			b := pick(order, replicas, func(b int32) bool { return !slices.Contains(rs, b) })
			plan[s.topic][s.partition] = append(rs, b)
			replicas[b]++
		}
	}

	// Spread the replicas: move one from the busiest broker to the idlest
	// that is not yet a replica of the same partition, a follower before a
	// leader, until every pair is within one or no move helps.
	spread(plan, slots, order, replicas, false)

	// Spread the preferred leaderships: hand one from the broker leading
	// most to a replica of the same partition leading fewer, until every
	// pair is within one or no swap helps.
	for _, s := range slots {
		if rs := plan[s.topic][s.partition]; len(rs) > 0 {
			leads[rs[0]]++
		}
	}
	spread(plan, slots, order, leads, true)
	return plan
}

// moveOne moves one unit of load from broker hi to the least loaded broker
// that is at least two below it, trying the idlest first. With lead it
// hands a preferred leadership of hi to another replica of the same
// partition (a reorder, no data moves); without, it replaces a replica of
// hi by a broker not holding one, a follower before a leader. Among the
// partitions that allow it, it takes one of the topic where hi has the
// most and the receiver the least, so each topic spreads too. It reports
// whether it moved anything.
func moveOne(plan Placement, slots []slot, order []int32, load map[int32]int, hi int32, lead bool) bool {
	cands := slices.Clone(order)
	sort.SliceStable(cands, func(i, j int) bool { return load[cands[i]] < load[cands[j]] })
	for _, to := range cands {
		if load[hi]-load[to] <= 1 {
			return false
		}
		for _, followers := range []bool{true, false} {
			best, bestScore := -1, 0
			for k, s := range slots {
				rs := plan[s.topic][s.partition]
				i, j := slices.Index(rs, hi), slices.Index(rs, to)
				ok := lead && i == 0 && j > 0 || !lead && i >= 0 && j < 0 && (i > 0 || !followers)
				if !ok {
					continue
				}
				if score := inTopic(plan[s.topic], hi, lead) - inTopic(plan[s.topic], to, lead); best < 0 || score > bestScore {
					best, bestScore = k, score
				}
			}
			if best >= 0 {
				s := slots[best]
				rs := plan[s.topic][s.partition]
				i := slices.Index(rs, hi)
				if lead {
					j := slices.Index(rs, to)
					rs[0], rs[j] = rs[j], rs[0]
				} else {
					rs[i] = to
				}
				load[hi]--
				load[to]++
				return true
			}
			if lead {
				break // a leadership hand-over has no follower pass
			}
		}
	}
	return false
}

// inTopic counts the replicas of broker b among parts, or with lead the
// partitions it is the preferred leader of.
func inTopic(parts [][]int32, b int32, lead bool) int {
	n := 0
	for _, rs := range parts {
		if lead && len(rs) > 0 && rs[0] == b || !lead && slices.Contains(rs, b) {
			n++
		}
	}
	return n
}

// pick returns the broker of order with the fewest replicas among those ok
// accepts (the lowest id on a tie).
func pick(order []int32, load map[int32]int, ok func(int32) bool) int32 {
	best := int32(-1)
	for _, b := range order {
		if ok(b) && (best < 0 || load[b] < load[best]) {
			best = b
		}
	}
	return best
}

// spread moves load one unit at a time (see moveOne) from the busiest
// broker that can give to the idlest that can take, until no move narrows
// the spread.
func spread(plan Placement, slots []slot, order []int32, load map[int32]int, lead bool) {
	for {
		busiest := slices.Clone(order)
		sort.SliceStable(busiest, func(i, j int) bool { return load[busiest[i]] > load[busiest[j]] })
		moved := false
		for _, hi := range busiest {
			if moveOne(plan, slots, order, load, hi, lead) {
				moved = true
				break
			}
		}
		if !moved {
			return
		}
	}
}

// Moves counts what going from cur to plan costs: replicas placed on a
// broker that did not hold them (each copies the partition), and
// partitions whose leadership a preferred leader election moves: the
// planned first replica is not the current leader (leaders; where unknown,
// cur's first replica).
func Moves(cur Placement, leaders map[string][]int32, plan Placement) (replicas, leaderships int) {
	for topic, parts := range plan {
		for i, rs := range parts {
			var old []int32
			if i < len(cur[topic]) {
				old = cur[topic][i]
			}
			for _, b := range rs {
				if !slices.Contains(old, b) {
					replicas++
				}
			}
			leader := int32(-1)
			if len(old) > 0 {
				leader = old[0]
			}
			if ls := leaders[topic]; i < len(ls) && ls[i] >= 0 {
				leader = ls[i]
			}
			if len(rs) > 0 && rs[0] != leader {
				leaderships++
			}
		}
	}
	return replicas, leaderships
}
