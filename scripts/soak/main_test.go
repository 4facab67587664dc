package main

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	exposition := `# TYPE go_goroutines gauge
go_goroutines 412
# TYPE go_memstats_heap_alloc_bytes gauge
go_memstats_heap_alloc_bytes 1.048576e+08
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 2.097152e+08
# TYPE process_open_fds gauge
process_open_fds 87
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 3.145728e+08
# TYPE kmt_consumer_messages_total counter
kmt_consumer_messages_total{producer="p",result="in_order",topic="kmt-0"} 1000
kmt_consumer_messages_total{producer="p",result="duplicate",topic="kmt-0"} 7
kmt_consumer_messages_total{producer="p",result="reordered",topic="kmt-0"} 3
# TYPE kmt_consumer_lost_messages_total counter
kmt_consumer_lost_messages_total{producer="p",topic="kmt-0"} 2
`
	s, err := parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := sample{heapAlloc: 100 << 20, heapInuse: 200 << 20, rss: 300 << 20, goroutines: 412, fds: 87, received: 1003, lost: 2}
	if s != want {
		t.Fatalf("parsed %+v, want %+v", s, want)
	}
	if _, err := parse(strings.NewReader("not { metrics")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestFlatness(t *testing.T) {
	series := func(f func(i int) sample) []sample {
		var out []sample
		for i := 0; i < 10; i++ {
			s := f(i)
			s.at = time.Duration(i+1) * time.Minute
			out = append(out, s)
		}
		return out
	}
	flat := series(func(i int) sample {
		return sample{heapInuse: float64(200<<20 + (i%3)<<20), goroutines: 400 + float64(i%2), fds: 90}
	})
	if v := flatness(flat); !strings.HasPrefix(v, "flat") {
		t.Errorf("flat series judged %q", v)
	}
	leak := series(func(i int) sample {
		return sample{heapInuse: float64(200<<20 + i*40<<20), goroutines: 400 + float64(20*i), fds: 90 + float64(5*i)}
	})
	v := flatness(leak)
	for _, want := range []string{"NOT FLAT", "heap in use grew", "goroutines grew", "open fds grew"} {
		if !strings.Contains(v, want) {
			t.Errorf("growing series judged %q, want it to say %q", v, want)
		}
	}
	if v := flatness(flat[:3]); !strings.Contains(v, "too few samples") {
		t.Errorf("3 samples judged %q", v)
	}
}
