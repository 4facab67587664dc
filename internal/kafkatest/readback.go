// Package kafkatest holds test helpers that establish ground truth
// independently of kmt's own code: it reads topics back with clients kmt
// does not use (kcat, a librdkafka program: ReadTopicKcat; franz-go's kgo:
// ReadTopic) and parses kmt's encoding by hand, not with kmt's decoder.
package kafkatest

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stream names a stream the way the ground truth sees it.
type Stream struct {
	Topic, Producer, Run string
	Key                  int
}

// Arrival is one data record of a stream as read back, in partition order.
type Arrival struct {
	Seq    int
	Offset int64
}

// Truth is what a topic holds: every kmt data record per stream in offset
// order, and the records that are not kmt's.
type Truth struct {
	Streams map[Stream][]Arrival
	Ends    map[Stream]int // end-of-stream markers: count sent
	Foreign int
	Records int
}

// Counts computes, by hand, what a validating consumer must report for
// these streams: unique sequences, duplicates (copies beyond the first),
// reordered arrivals (a sequence below the highest seen that was not seen
// before), and for each stream the sequences in 0..end-1 never seen.
func (tr *Truth) Counts() (unique, dups, reordered int, missing map[Stream][]int) {
	missing = map[Stream][]int{}
	for s, arr := range tr.Streams {
		seen := map[int]bool{}
		highest := -1
		for _, a := range arr {
			switch {
			case seen[a.Seq]:
				dups++
			case a.Seq < highest:
				reordered++
			}
			if !seen[a.Seq] {
				seen[a.Seq] = true
				unique++
			}
			highest = max(highest, a.Seq)
		}
		end, ok := tr.Ends[s]
		if !ok {
			end = highest + 1
		}
		for q := 0; q < end; q++ {
			if !seen[q] {
				missing[s] = append(missing[s], q)
			}
		}
	}
	return unique, dups, reordered, missing
}

// ReadTopic reads every record of topic from brokers with franz-go, from
// the start until no record arrived for quiet (ten times quiet before the
// first record), and classifies them (header encoding). opts are extra
// client options, e.g. TLS and SASL for a secured cluster (see Secured).
// ReadTopicKcat reads the same with kcat, to the end of every partition.
func ReadTopic(t testing.TB, brokers []string, topic string, quiet time.Duration, opts ...kgo.Opt) *Truth {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	if err != nil {
		t.Fatalf("read back %s: %v", topic, err)
	}
	defer cl.Close()
	type rec struct {
		part   int32
		offset int64
		r      *kgo.Record
	}
	var recs []rec
	deadline := time.Now().Add(2 * time.Minute)
	// Until the first record the wait is ten times longer: on a loaded
	// machine connecting (TLS, SASL, metadata) alone can take longer than
	// quiet, and a read-back that gave up before its first fetch would
	// report an empty topic.
	last := time.Now().Add(9 * quiet)
	for time.Since(last) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("read back %s: still reading after 2 minutes", topic)
		}
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, rec{r.Partition, r.Offset, r})
			last = time.Now()
		})
	}
	raw := make([]rawRecord, len(recs))
	for i, x := range recs {
		raw[i] = rawRecord{partition: x.part, offset: x.offset, key: string(x.r.Key), value: string(x.r.Value)}
		for _, h := range x.r.Headers {
			raw[i].headers = append(raw[i].headers, [2]string{h.Key, string(h.Value)})
		}
	}
	return classify(topic, raw, false)
}

// rawRecord is one record as a reader got it, before classification.
type rawRecord struct {
	partition int32
	offset    int64
	key       string
	value     string
	headers   [][2]string // name, value
}

// classify sorts recs by partition and offset and sorts them into kmt's
// streams, end-of-stream markers and foreign records, parsing kmt's
// encoding by hand: the header encoding, or with body the in-body one.
// Both readers (ReadTopic, ReadTopicKcat) end here, so their counts can
// differ only by what they read.
func classify(topic string, recs []rawRecord, body bool) *Truth {
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].partition != recs[j].partition {
			return recs[i].partition < recs[j].partition
		}
		return recs[i].offset < recs[j].offset
	})
	tr := &Truth{Streams: map[Stream][]Arrival{}, Ends: map[Stream]int{}}
	for _, x := range recs {
		tr.Records++
		var fields []string
		end := false
		if body {
			// "producer/run;seq;ts;payload", the payload "kmt:end" on an
			// end marker.
			fields = strings.SplitN(x.value, ";", 4)
			if len(fields) != 4 {
				tr.Foreign++
				continue
			}
			end = fields[3] == "kmt:end"
		} else {
			// The first header named kmt: "producer/run;seq;ts", and
			// ";kmt:end" after that on an end marker.
			for _, kv := range x.headers {
				if kv[0] == "kmt" {
					fields = strings.Split(kv[1], ";")
					break
				}
			}
			if len(fields) < 3 || len(fields) > 4 || (len(fields) == 4 && fields[3] != "kmt:end") {
				tr.Foreign++
				continue
			}
			end = len(fields) == 4
		}
		key, errK := strconv.Atoi(x.key)
		if errK != nil || key < 0 {
			tr.Foreign++
			continue
		}
		producer, run, _ := strings.Cut(fields[0], "/")
		seq, errS := strconv.Atoi(fields[1])
		ts, errT := strconv.ParseInt(fields[2], 10, 64)
		if errS != nil || errT != nil || seq < 0 || ts < 0 || producer == "" || run == "" || strings.Contains(run, "/") {
			tr.Foreign++
			continue
		}
		s := Stream{Topic: topic, Producer: producer, Run: run, Key: key}
		if end {
			tr.Ends[s] = seq
			continue
		}
		tr.Streams[s] = append(tr.Streams[s], Arrival{Seq: seq, Offset: x.offset})
	}
	return tr
}

// Produce writes records to topic with kgo, as a client kmt did not write.
func Produce(t testing.TB, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}
