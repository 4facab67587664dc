package processes_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/kmtproject/kmt/controller/processes"
)

// kafkaLike returns the placement Kafka gives a topic of n partitions with
// replication factor rf on brokers 0..b-1 (replica k of partition p on
// broker (p+k) mod b), and its leaders (the first replicas).
func kafkaLike(topic string, n, rf, b int) (processes.Placement, map[string][]int32) {
	pl := processes.Placement{topic: make([][]int32, n)}
	leaders := map[string][]int32{topic: make([]int32, n)}
	for p := range n {
		for k := range rf {
			pl[topic][p] = append(pl[topic][p], int32((p+k)%b))
		}
		leaders[topic][p] = pl[topic][p][0]
	}
	return pl, leaders
}

func brokerIDs(n int) []int32 {
	var out []int32
	for b := range n {
		out = append(out, int32(b))
	}
	return out
}

// loads counts replicas and preferred leaderships per broker, by hand.
func loads(pl processes.Placement) (replicas, leads map[int32]int) {
	replicas, leads = map[int32]int{}, map[int32]int{}
	for _, parts := range pl {
		for _, rs := range parts {
			for _, b := range rs {
				replicas[b]++
			}
			if len(rs) > 0 {
				leads[rs[0]]++
			}
		}
	}
	return replicas, leads
}

// spreadOf returns the highest minus the lowest load over brokers.
func spreadOf(load map[int32]int, brokers []int32) int {
	lo, hi := load[brokers[0]], load[brokers[0]]
	for _, b := range brokers {
		lo, hi = min(lo, load[b]), max(hi, load[b])
	}
	return hi - lo
}

// checkValid checks that plan keeps every partition of cur, each with
// min(its replication factor, len(brokers)) distinct replicas, all on
// brokers, and that replicas spread within one.
func checkValid(t *testing.T, cur, plan processes.Placement, brokers []int32) {
	t.Helper()
	for topic, parts := range cur {
		if len(plan[topic]) != len(parts) {
			t.Fatalf("%s: %d partitions planned, %d exist", topic, len(plan[topic]), len(parts))
		}
		for p, rs := range parts {
			got := plan[topic][p]
			if want := min(len(rs), len(brokers)); len(got) != want {
				t.Errorf("%s/%d: replicas %v, want %d of them", topic, p, got, want)
			}
			for i, b := range got {
				if !slices.Contains(brokers, b) || slices.Contains(got[:i], b) {
					t.Errorf("%s/%d: replicas %v: %d is not a distinct broker of %v", topic, p, got, b, brokers)
				}
			}
		}
	}
	if r, _ := loads(plan); spreadOf(r, brokers) > 1 {
		t.Errorf("replicas per broker %v: spread over one", r)
	}
}

// TestBalanceGrowThreeToFour is the grow-source-cluster scenario's case: 6
// partitions with 3 replicas on brokers 0-2, broker 3 joins. The new broker
// gets the 4 replicas and 1 leadership the balance needs and nothing else
// moves: the old round-robin plan moved 12 replicas and 5 leaderships.
func TestBalanceGrowThreeToFour(t *testing.T) {
	cur, leaders := kafkaLike("kmt-0", 6, 3, 3)
	brokers := brokerIDs(4)
	plan := processes.Balance(cur, leaders, brokers)
	checkValid(t, cur, plan, brokers)
	r, l := loads(plan)
	for _, b := range brokers {
		if r[b] < 4 || r[b] > 5 || l[b] < 1 || l[b] > 2 {
			t.Errorf("broker %d holds %d replicas and leads %d partitions, want 4-5 and 1-2 (plan %v)", b, r[b], l[b], plan)
		}
	}
	moved, elected := processes.Moves(cur, leaders, plan)
	if moved != 4 || elected != 1 {
		t.Errorf("%d replicas moved and %d leaderships, want 4 and 1 (plan %v)", moved, elected, plan)
	}
}

// TestBalanceGrowTwoTopics: with two topics the moves fall on both, so in
// each topic every broker of four leads 1 or 2 of its 6 partitions, and
// over both every broker holds 9 replicas and leads 3.
func TestBalanceGrowTwoTopics(t *testing.T) {
	cur, leaders := kafkaLike("kmt-0", 6, 3, 3)
	other, ol := kafkaLike("kmt-1", 6, 3, 3)
	cur["kmt-1"], leaders["kmt-1"] = other["kmt-1"], ol["kmt-1"]
	brokers := brokerIDs(4)
	plan := processes.Balance(cur, leaders, brokers)
	checkValid(t, cur, plan, brokers)
	r, l := loads(plan)
	for _, b := range brokers {
		if r[b] != 9 || l[b] != 3 {
			t.Errorf("broker %d holds %d replicas and leads %d, want 9 and 3 (plan %v)", b, r[b], l[b], plan)
		}
	}
	for topic := range plan {
		_, tl := loads(processes.Placement{topic: plan[topic]})
		for _, b := range brokers {
			if tl[b] < 1 || tl[b] > 2 {
				t.Errorf("%s: broker %d leads %d of 6 partitions, want 1-2 (plan %v)", topic, b, tl[b], plan[topic])
			}
		}
	}
	if moved, elected := processes.Moves(cur, leaders, plan); moved != 9 || elected != 3 {
		t.Errorf("%d replicas moved and %d leaderships, want 9 and 3", moved, elected)
	}
}

// TestBalanceLeavesABalancedPlacement checks that a placement already in
// balance is planned as it is, leaders included: no reassignment, no
// election.
func TestBalanceLeavesABalancedPlacement(t *testing.T) {
	for _, c := range []struct{ n, rf, b int }{{6, 3, 3}, {6, 3, 6}, {12, 2, 4}, {1, 1, 1}} {
		cur, leaders := kafkaLike("kmt-0", c.n, c.rf, c.b)
		plan := processes.Balance(cur, leaders, brokerIDs(c.b))
		if !reflect.DeepEqual(plan, cur) {
			t.Errorf("%+v: balanced %v planned as %v", c, cur, plan)
		}
	}
}

// TestBalanceKeepsCurrentLeaders: after a broker restart the leaders are
// not the first replicas; a balanced placement then gets its lists
// reordered so the current leaders come first, and nothing moves.
func TestBalanceKeepsCurrentLeaders(t *testing.T) {
	cur, _ := kafkaLike("kmt-0", 6, 3, 3)
	leaders := map[string][]int32{"kmt-0": {1, 2, 0, 1, 2, 0}} // each the second replica
	plan := processes.Balance(cur, leaders, brokerIDs(3))
	checkValid(t, cur, plan, brokerIDs(3))
	for p, rs := range plan["kmt-0"] {
		if rs[0] != leaders["kmt-0"][p] {
			t.Errorf("partition %d planned %v, its leader %d not first", p, rs, leaders["kmt-0"][p])
		}
	}
	if moved, elected := processes.Moves(cur, leaders, plan); moved != 0 || elected != 0 {
		t.Errorf("%d replicas and %d leaderships moved, want none", moved, elected)
	}
}

// TestBalanceReplacesDepartedBrokers: replicas on brokers no longer
// running are replaced by running ones, the replication factor kept (and
// capped at the brokers there are).
func TestBalanceReplacesDepartedBrokers(t *testing.T) {
	cur, leaders := kafkaLike("kmt-0", 6, 3, 5)
	brokers := []int32{0, 1, 2} // 3 and 4 are gone
	plan := processes.Balance(cur, leaders, brokers)
	checkValid(t, cur, plan, brokers)
	two := processes.Balance(cur, leaders, []int32{0, 1})
	checkValid(t, cur, two, []int32{0, 1})
}

// TestBalanceProperties plans random placements onto random broker sets
// and checks, by hand, what Balance promises: valid lists, replicas within
// one, leaderships within one unless no hand-over is possible, cur
// untouched, and a second pass changing nothing.
func TestBalanceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 500 {
		nb := 1 + rng.IntN(8)
		cur := processes.Placement{}
		leaders := map[string][]int32{}
		for topic := range 1 + rng.IntN(3) {
			name := fmt.Sprintf("kmt-%d", topic)
			for range 1 + rng.IntN(12) {
				rf := 1 + rng.IntN(4)
				perm := rng.Perm(nb + 2) // some replicas on brokers that left
				var rs []int32
				for _, b := range perm[:min(rf, len(perm))] {
					rs = append(rs, int32(b))
				}
				cur[name] = append(cur[name], rs)
				leaders[name] = append(leaders[name], rs[rng.IntN(len(rs))])
			}
		}
		var brokers []int32
		for _, b := range rng.Perm(nb + 2)[:nb] {
			brokers = append(brokers, int32(b))
		}
		before := fmt.Sprint(cur)
		plan := processes.Balance(cur, leaders, brokers)
		if fmt.Sprint(cur) != before {
			t.Fatalf("case %d: Balance modified its input", i)
		}
		checkValid(t, cur, plan, brokers)
		_, l := loads(plan)
		if spreadOf(l, brokers) > 1 {
			// Acceptable only when no partition led by a busiest broker has
			// a replica on a broker leading two fewer.
			for _, parts := range plan {
				for _, rs := range parts {
					for _, b := range rs[1:] {
						if l[rs[0]]-l[b] >= 2 {
							t.Fatalf("case %d: %v leads %d and could hand a leadership to %d (leads %d): %v", i, rs[0], l[rs[0]], b, l[b], plan)
						}
					}
				}
			}
		}
		again := processes.Balance(plan, nil, brokers)
		if moved, elected := processes.Moves(plan, nil, again); moved != 0 || elected != 0 {
			t.Fatalf("case %d: a second pass moves %d replicas and %d leaderships", i, moved, elected)
		}
		if t.Failed() {
			t.Fatalf("case %d: cur %v brokers %v plan %v", i, cur, brokers, plan)
		}
	}
}
