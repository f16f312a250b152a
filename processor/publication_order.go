package processor

import "time"

// inPublicationOrder returns one flow's inputs of a batch in the order they
// were published, as far as the batch can tell.
//
// A poll returns each partition's records together, so a flow's DLR on one
// partition comes after its DLR on another even when it was published
// minutes earlier (a processor catching up after a restart reads whole
// partitions at a time). Applied in that order, two deciding DLRs can close
// the flow differently than they happened: an SMS delivery before the
// earlier WhatsApp read, a later channel's failure before an earlier
// channel's delivery, which sends a paid next step. The inputs are merged
// by record timestamp (LogAppendTime on the topics we create, so one clock
// per partition leader), and each partition's records keep their offset
// order whatever their timestamps say: a record applied after a later one
// of its partition would look like a redelivery and be dropped.
//
// Ties keep the order read. A flow's inputs all from one partition, the
// usual case, come back as they are.
func inPublicationOrder(ins []input) []input {
	if len(ins) < 2 || onePartition(ins) {
		return ins
	}
	type queue struct{ ins []input }
	var queues []*queue
	byPartition := map[partitionKey]*queue{}
	for _, in := range ins {
		k := partitionOf(in)
		q, ok := byPartition[k]
		if !ok {
			q = &queue{}
			byPartition[k] = q
			queues = append(queues, q)
		}
		q.ins = append(q.ins, in)
	}
	out := make([]input, 0, len(ins))
	for len(out) < len(ins) {
		var first *queue
		for _, q := range queues {
			if len(q.ins) > 0 && (first == nil || timestampOf(q.ins[0]).Before(timestampOf(first.ins[0]))) {
				first = q
			}
		}
		out = append(out, first.ins[0])
		first.ins = first.ins[1:]
	}
	return out
}

type partitionKey struct {
	topic     string
	partition int32
}

func partitionOf(in input) partitionKey {
	if in.src == nil {
		return partitionKey{}
	}
	return partitionKey{in.src.Topic, in.src.Partition}
}

func timestampOf(in input) time.Time {
	if in.src == nil {
		return time.Time{}
	}
	return in.src.Timestamp
}

func onePartition(ins []input) bool {
	k := partitionOf(ins[0])
	for _, in := range ins[1:] {
		if partitionOf(in) != k {
			return false
		}
	}
	return true
}
