package schemas

import "github.com/twmb/franz-go/pkg/sr"

// ConfluentBody returns the Avro binary of a value written in the Confluent
// wire format (byte 0, a 4-byte big-endian schema id, the Avro binary), as
// a processor run with a schema registry writes its outputs, and whether
// the value had that header; a value without it is returned as it is.
//
// Only the records whose plain encoding never starts with byte 0 can be
// told apart this way: FlowEvent, ChannelSend, SendRequest, FlowDefinition,
// Sender and Template begin with a string that is never empty. A DeadLetter or a
// DeliveryReport may start with byte 0 (a null first field): decode those
// plainly first, and use this only when that fails.
func ConfluentBody(value []byte) ([]byte, bool) {
	if _, body, err := (&sr.ConfluentHeader{}).DecodeID(value); err == nil {
		return body, true
	}
	return value, false
}
