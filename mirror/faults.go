package mirror

import (
	"errors"
	"sync"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/message"
)

// recordRef identifies one source record.
type recordRef struct {
	topic     string
	partition int32
	offset    int64
}

// streamPos is a record's kmt stream identity and sequence, for BySeq
// selectors and Swap partners.
type streamPos struct {
	producer, run string
	key           uint32
	seq           uint64
}

// injector decides which fault each record gets and counts injections once
// per record.
type injector struct {
	f      Faults
	bySeq  map[string]bool // topics with BySeq selectors
	mu     sync.Mutex
	done   map[recordRef]Fault
	counts [len(faultNames)]uint64
}

func newInjector(f Faults) *injector {
	in := &injector{f: f, bySeq: map[string]bool{}, done: map[recordRef]Fault{}}
	for _, list := range [][]Select{f.Drop, f.Duplicate, f.Swap} {
		for _, s := range list {
			if s.By == BySeq {
				in.bySeq[s.Topic] = true
			}
		}
	}
	return in
}

// decodePos decodes a record's kmt identity: headers first, then the value.
func decodePos(msg *sarama.ConsumerMessage) (streamPos, bool) {
	var m message.Meta
	err := message.DecodeHeaders(msg.Key, msg.Headers, &m)
	if errors.Is(err, message.ErrNoMetadata) {
		err = message.DecodeBody(msg.Key, msg.Value, &m)
	}
	if err != nil || m.End {
		return streamPos{}, false
	}
	return streamPos{producer: string(m.Producer), run: string(m.Run), key: m.Key, seq: m.Seq}, true
}

func (s *Select) match(msg *sarama.ConsumerMessage, pos *streamPos, havePos bool) bool {
	if s.Topic != msg.Topic {
		return false
	}
	if s.By == ByOffset {
		return s.Partition == msg.Partition && msg.Offset >= 0 && uint64(msg.Offset) >= s.From && uint64(msg.Offset) < s.To
	}
	return havePos && pos.key == s.Key && pos.seq >= s.From && pos.seq < s.To &&
		(s.Producer == "" || s.Producer == pos.producer)
}

// decision is what to do with one record.
type decision struct {
	fault Fault
	// first: this is the first time this record gets its fault (Duplicate
	// and Swap apply only then; Drop always applies).
	first bool
	// bySeq: Swap partner is the next sequence of pos's stream rather than
	// the next record of the partition.
	bySeq bool
	pos   streamPos
}

// decide returns the fault for msg. It does not count; call count when the
// fault has taken effect.
func (in *injector) decide(msg *sarama.ConsumerMessage) decision {
	var pos streamPos
	var havePos bool
	if in.bySeq[msg.Topic] {
		pos, havePos = decodePos(msg)
	}
	d := decision{pos: pos}
	for _, c := range []struct {
		f    Fault
		list []Select
	}{{Drop, in.f.Drop}, {Duplicate, in.f.Duplicate}, {Swap, in.f.Swap}} {
		for i := range c.list {
			if c.list[i].match(msg, &pos, havePos) {
				d.fault = c.f
				d.bySeq = c.list[i].By == BySeq
				break
			}
		}
		if d.fault != NoFault {
			break
		}
	}
	if d.fault == NoFault && in.f.Func != nil {
		d.fault = in.f.Func(msg)
		if d.fault < NoFault || d.fault > Swap {
			d.fault = NoFault
		}
	}
	if d.fault == NoFault {
		return d
	}
	in.mu.Lock()
	_, seen := in.done[recordRef{msg.Topic, msg.Partition, msg.Offset}]
	in.mu.Unlock()
	d.first = !seen
	return d
}

// count records that fault took effect on msg; it returns false when it had
// already been counted for this record.
func (in *injector) count(msg *sarama.ConsumerMessage, f Fault) bool {
	ref := recordRef{msg.Topic, msg.Partition, msg.Offset}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, seen := in.done[ref]; seen {
		return false
	}
	in.done[ref] = f
	in.counts[f]++
	return true
}

// injected returns the number of records each fault took effect on.
func (in *injector) injected(f Fault) uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.counts[f]
}

// isPartner reports whether msg is the Swap partner of the held record h.
func isPartner(h *held, msg *sarama.ConsumerMessage) bool {
	if !h.bySeq {
		return true // the next record read from the partition
	}
	pos, ok := decodePos(msg)
	return ok && pos.key == h.pos.key && pos.seq == h.pos.seq+1 &&
		pos.producer == h.pos.producer && pos.run == h.pos.run
}

// held is a Swap record waiting for its partner.
type held struct {
	msg   *sarama.ConsumerMessage
	bySeq bool
	pos   streamPos
}
