package actor

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// recordOf is a record as the runtime wrote it before its length was
// computed first: the body, then its length moved in front of it.
func recordOf(kind byte, body []byte) []byte {
	b := append([]byte{kind}, binary.AppendUvarint(nil, uint64(len(body)))...)
	return append(b, body...)
}

// TestRecordLengthsComputed: sessions and replies written with their
// lengths computed first are the records written before, in at most one
// allocation, for bodies whose length takes one varint byte and two.
func TestRecordLengthsComputed(t *testing.T) {
	for _, size := range []int{0, 3, 120, 200, 20000} {
		inv := bytes.Repeat([]byte("i"), size)
		s := session{id: 300, iss: "did:key:zIss", aud: "did:key:zAud", cmd: "/dms/deployment/commit", inv: inv}
		var body []byte
		body = binary.AppendUvarint(body, uint64(s.id))
		body = appendString(body, string(s.iss))
		body = appendString(body, string(s.aud))
		body = appendString(body, s.cmd)
		body = appendBytes(body, s.inv)
		if got, want := appendSession([]byte("x"), s), append([]byte("x"), recordOf(recSession, body)...); !bytes.Equal(got, want) {
			t.Errorf("session, inv of %d: %x, want %x", size, got, want)
		}
		if n := testing.AllocsPerRun(10, func() { appendSession(nil, s) }); n > 1 && !raceEnabled {
			t.Errorf("session, inv of %d: %v allocations, want 1", size, n)
		}

		r := &Reply{InReplyTo: 7, From: Handle{DID: "did:key:zFrom", Host: "12D3KooWHost", Inbox: "root"}, Err: &Error{Code: CodeDenied, Msg: strings.Repeat("m", size/2)}, Payload: inv}
		body = binary.BigEndian.AppendUint64(nil, r.InReplyTo)
		body = appendHandle(body, r.From)
		body = appendString(body, string(r.Err.Code))
		body = appendString(body, r.Err.Msg)
		body = appendBytes(body, r.Payload)
		if got, want := appendReply(nil, r), recordOf(recReply, body); !bytes.Equal(got, want) {
			t.Errorf("reply, payload of %d: %x, want %x", size, got, want)
		}
		if n := testing.AllocsPerRun(10, func() { appendReply(nil, r) }); n > 1 && !raceEnabled {
			t.Errorf("reply, payload of %d: %v allocations, want 1", size, n)
		}
	}
}
