package actor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// Wire format. A frame is a sequence of records; each record is a kind byte,
// a uvarint body length, and the body. Strings and byte fields inside bodies
// are uvarint-length-prefixed. An envelope body starts with its nonce (8
// bytes, big-endian), so the head of an oversized frame still names the
// envelope to refuse.
//
// An envelope has two forms. The full form carries both handles, the
// behavior, the topic and the invocation. The session form (flagSessionForm)
// is for envelopes that name a session of their link: the session already
// fixes the sender's and receiver's DIDs and the behavior, the link fixes
// the hosts (the sender's is the link's peer, the receiver's is this host),
// so only the inboxes are sent. The receiver rebuilds the full envelope from
// the link before any check runs (link.expand); off a link a session-form
// envelope does not decode (errNeedsLink).
const (
	recSession  byte = 1 // defines a link-scoped session: id, invocation
	recEnvelope byte = 2
	recReply    byte = 3
)

// Envelope flags.
const (
	flagWantReply   = 1 << 0
	flagSessionForm = 1 << 1 // DIDs, hosts and behavior left out: see above
	knownFlags      = flagWantReply | flagSessionForm
)

// limits on decoded fields: far above anything legitimate, far below what
// could hurt.
const (
	maxStringLen = 4 << 10
)

var errTruncated = errors.New("truncated")

// errNeedsLink refuses a session-form envelope decoded without the link it
// came on.
var errNeedsLink = errors.New("envelope in the session form: its handles and behavior are those of a session of its link, so it decodes only on that link")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendHandle(b []byte, h Handle) []byte {
	b = appendString(b, string(h.DID))
	b = appendString(b, h.Host)
	return appendString(b, h.Inbox)
}

// uvarintLen is the length of v as a uvarint.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func strLen(n int) int { return uvarintLen(uint64(n)) + n }

func handleLen(h Handle) int {
	return strLen(len(h.DID)) + strLen(len(h.Host)) + strLen(len(h.Inbox))
}

// envelopeBodyLen is the exact length of an envelope record's body in the
// full form, or in the session form when sessionForm.
func envelopeBodyLen(e *Envelope, sessionForm bool) int {
	exp := e.Expiry.UnixNano()
	zz := uint64(exp<<1) ^ uint64(exp>>63) // zigzag, as binary.AppendVarint
	n := 8 + uvarintLen(zz) + 1 + uvarintLen(uint64(e.Session)) +
		strLen(len(e.Trace)) + strLen(len(e.Payload))
	if sessionForm {
		return n + strLen(len(e.To.Inbox)) + strLen(len(e.From.Inbox))
	}
	return n + handleLen(e.To) + handleLen(e.From) +
		strLen(len(e.Behavior)) + strLen(len(e.Topic)) + strLen(len(e.Invocation))
}

// appendEnvelope appends e in the full form.
func appendEnvelope(b []byte, e *Envelope) []byte { return appendEnvelopeForm(b, e, false) }

// sessionFormOK reports whether e can go in the session form on a link from
// host self to host peer: it names a session, carries no invocation and no
// topic, and its hosts are the link's ends.
func sessionFormOK(e *Envelope, self, peer string) bool {
	return e.Session != 0 && len(e.Invocation) == 0 && e.Topic == "" &&
		e.From.Host == self && e.To.Host == peer
}

// appendEnvelopeForm appends e in the full form, or in the session form
// when sessionForm (the caller checked sessionFormOK).
func appendEnvelopeForm(b []byte, e *Envelope, sessionForm bool) []byte {
	n := envelopeBodyLen(e, sessionForm)
	if cap(b)-len(b) < 1+binary.MaxVarintLen64+n {
		nb := make([]byte, len(b), len(b)+1+binary.MaxVarintLen64+n)
		copy(nb, b)
		b = nb
	}
	b = append(b, recEnvelope)
	b = binary.AppendUvarint(b, uint64(n))
	return appendEnvelopeBody(b, e, sessionForm)
}

func appendEnvelopeBody(b []byte, e *Envelope, sessionForm bool) []byte {
	b = binary.BigEndian.AppendUint64(b, e.Nonce)
	b = binary.AppendVarint(b, e.Expiry.UnixNano())
	var flags byte
	if e.WantReply {
		flags |= flagWantReply
	}
	if sessionForm {
		flags |= flagSessionForm
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(e.Session))
	if sessionForm {
		b = appendString(b, e.To.Inbox)
		b = appendString(b, e.From.Inbox)
		b = appendString(b, e.Trace)
		return appendBytes(b, e.Payload)
	}
	b = appendHandle(b, e.To)
	b = appendHandle(b, e.From)
	b = appendString(b, e.Behavior)
	b = appendString(b, e.Topic)
	b = appendString(b, e.Trace)
	b = appendBytes(b, e.Invocation)
	return appendBytes(b, e.Payload)
}

// appendReply appends r's record, its length computed first (no closure,
// no move), so that it can be encoded into a caller's buffer.
func appendReply(b []byte, r *Reply) []byte {
	var code, msg string
	if r.Err != nil {
		code, msg = string(r.Err.Code), r.Err.Msg
	}
	n := 8 + handleLen(r.From) + strLen(len(code)) + strLen(len(msg)) + strLen(len(r.Payload))
	b = slices.Grow(b, 1+uvarintLen(uint64(n))+n) // one allocation at most, not one per field
	b = append(b, recReply)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.BigEndian.AppendUint64(b, r.InReplyTo)
	b = appendHandle(b, r.From)
	b = appendString(b, code)
	b = appendString(b, msg)
	return appendBytes(b, r.Payload)
}

// session is a link-scoped invocation: envelopes on the link from iss to
// aud for cmd may name it by id instead of carrying the invocation.
type session struct {
	id       uint32
	iss, aud identity.DID
	cmd      string
	inv      []byte
}

// appendSession appends s's record, its length computed first, as
// appendReply does.
func appendSession(b []byte, s session) []byte {
	n := uvarintLen(uint64(s.id)) + strLen(len(s.iss)) + strLen(len(s.aud)) + strLen(len(s.cmd)) + strLen(len(s.inv))
	b = slices.Grow(b, 1+uvarintLen(uint64(n))+n)
	b = append(b, recSession)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(s.id))
	b = appendString(b, string(s.iss))
	b = appendString(b, string(s.aud))
	b = appendString(b, s.cmd)
	return appendBytes(b, s.inv)
}

// AppendSession appends to frame the record that defines session id on a
// link: envelopes from iss to aud for cmd may then name it instead of
// carrying inv. It is for tests and tools that speak the wire format
// directly; a runtime defines its sessions itself.
func AppendSession(frame []byte, id uint32, iss, aud identity.DID, cmd string, inv []byte) []byte {
	return appendSession(frame, session{id: id, iss: iss, aud: aud, cmd: cmd, inv: inv})
}

// EncodeEnvelope returns the frame of a single envelope (for broadcasts and
// tests).
func EncodeEnvelope(e *Envelope) []byte { return appendEnvelope(nil, e) }

// decoder reads fields from a record body.
type decoder struct {
	b   []byte
	err error
	in  *interner // nil: strings are allocated
}

// interner reuses the strings a link carries again and again (DIDs, hosts,
// inboxes, behaviors), so decoding an envelope allocates none of them. One
// reader goroutine owns it. It holds at most internMaxStrings strings of at
// most internMaxLen bytes each and internMaxBytes in all, and starts afresh
// when full: a peer sending ever new strings costs the allocations it
// would cost without an interner, never more memory.
type interner struct {
	m     map[string]string
	bytes int
	// last is the string get returned last: a link's envelopes repeat
	// their inboxes, and comparing with it costs less than the map's
	// hash.
	last string
}

const (
	internMaxLen     = 256
	internMaxStrings = 2048
	internMaxBytes   = 128 << 10
)

func newInterner() *interner { return &interner{m: map[string]string{}} }

func (in *interner) get(b []byte) string {
	if string(b) == in.last {
		return in.last
	}
	if s, ok := in.m[string(b)]; ok {
		in.last = s
		return s
	}
	if len(in.m) >= internMaxStrings || in.bytes+len(b) > internMaxBytes {
		clear(in.m)
		in.bytes = 0
	}
	s := string(b)
	in.m[s] = s
	in.bytes += len(s)
	in.last = s
	return s
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(errTruncated)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(errTruncated)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return v
}

func (d *decoder) string() string {
	b := d.bytes()
	if len(b) > maxStringLen {
		d.fail(fmt.Errorf("string of %d bytes", len(b)))
		return ""
	}
	if d.in != nil && len(b) <= internMaxLen {
		return d.in.get(b)
	}
	return string(b)
}

// rawString is string without the interner: for fields that differ from
// one envelope to the next (a traceparent names its sender's span), which
// would only push the link's recurring strings out of it.
func (d *decoder) rawString() string {
	b := d.bytes()
	if len(b) > maxStringLen {
		d.fail(fmt.Errorf("string of %d bytes", len(b)))
		return ""
	}
	return string(b)
}

func (d *decoder) handle() Handle {
	return Handle{DID: identity.DID(d.string()), Host: d.string(), Inbox: d.string()}
}

// record is one decoded record of a frame.
type record struct {
	kind    byte
	env     *Envelope
	reply   *Reply
	session *session
	// sessionForm: env came in the session form, and its DIDs, hosts and
	// behavior are empty until link.expand fills them in.
	sessionForm bool
}

// decodeFrame splits a frame into records. It never panics; on malformed
// input it returns the records decoded so far and an error. An envelope in
// the session form is refused with errNeedsLink.
func decodeFrame(frame []byte) ([]record, error) { return decodeFrameWith(frame, nil, false) }

// decodeFrameWith is decodeFrame with an interner for the strings; onLink
// accepts envelopes in the session form, for the link's reader to expand.
func decodeFrameWith(frame []byte, in *interner, onLink bool) ([]record, error) {
	var recs []record
	_, err := eachRecord(frame, in, onLink, func(r record) { recs = append(recs, r) })
	return recs, err
}

// eachRecord decodes frame's records one at a time and calls fn with each,
// in order, so a frame of many small records never exists decoded all at
// once (a 4 MiB frame of minimal session records would decode to some
// 70 MiB). It returns how many records it decoded, and an error for the
// first malformed one (fn has seen those before it).
func eachRecord(frame []byte, in *interner, onLink bool, fn func(record)) (int, error) {
	return eachRecordInto(frame, in, onLink, nil, fn)
}

// eachRecordInto is eachRecord decoding every envelope into *into (when
// not nil), overwritten by the next: fn must not keep record.env.
func eachRecordInto(frame []byte, in *interner, onLink bool, into *Envelope, fn func(record)) (int, error) {
	n := 0
	for len(frame) > 0 {
		kind := frame[0]
		size, ln := binary.Uvarint(frame[1:])
		if ln <= 0 || size > uint64(len(frame)-1-ln) {
			return n, fmt.Errorf("record %d: %w", n, errTruncated)
		}
		body := frame[1+ln : 1+ln+int(size)]
		frame = frame[1+ln+int(size):]
		r, err := decodeRecord(kind, body, in, into)
		if err == nil && r.sessionForm && !onLink {
			err = errNeedsLink
		}
		if err != nil {
			return n, fmt.Errorf("record %d: %w", n, err)
		}
		fn(r)
		n++
	}
	return n, nil
}

func decodeRecord(kind byte, body []byte, in *interner, into *Envelope) (record, error) {
	d := decoder{b: body, in: in}
	r := record{kind: kind}
	switch kind {
	case recSession:
		id := d.uvarint()
		if id == 0 || id > 1<<32-1 {
			d.fail(fmt.Errorf("session id %d", id))
		}
		r.session = &session{id: uint32(id), iss: identity.DID(d.string()), aud: identity.DID(d.string()), cmd: d.string(), inv: d.bytes()}
	case recEnvelope:
		e := into
		if e == nil {
			e = new(Envelope)
		}
		*e = Envelope{}
		r.env, r.sessionForm = e, decodeEnvelopeBody(&d, e)
	case recReply:
		rp := &Reply{InReplyTo: d.u64(), From: d.handle()}
		code, msg := d.string(), d.string()
		if code != "" {
			rp.Err = &Error{Code: Code(code), Msg: msg}
		}
		rp.Payload = d.bytes()
		r.reply = rp
	default:
		return r, fmt.Errorf("unknown record kind %d", kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%d trailing bytes", len(d.b)))
	}
	return r, d.err
}

// decodeEnvelopeBody decodes an envelope in either form into e (zero) and
// says which.
func decodeEnvelopeBody(d *decoder, e *Envelope) (sessionForm bool) {
	e.Nonce = d.u64()
	exp := d.varint()
	e.Expiry = time.Unix(0, exp)
	flags := d.byte1()
	if flags&^knownFlags != 0 {
		d.fail(fmt.Errorf("unknown envelope flags %#x", flags&^knownFlags))
	}
	e.WantReply = flags&flagWantReply != 0
	sessionForm = flags&flagSessionForm != 0
	s := d.uvarint()
	if s > 1<<32-1 {
		d.fail(fmt.Errorf("session id %d", s))
	}
	e.Session = uint32(s)
	if sessionForm {
		if s == 0 && d.err == nil {
			d.fail(errors.New("envelope in the session form names no session"))
		}
		e.To.Inbox = d.string()
		e.From.Inbox = d.string()
		e.Trace = d.rawString()
		e.Payload = d.bytes()
		return true
	}
	e.To = d.handle()
	e.From = d.handle()
	e.Behavior = d.string()
	e.Topic = d.string()
	e.Trace = d.rawString()
	e.Invocation = d.bytes()
	e.Payload = d.bytes()
	return false
}

// DecodeEnvelope decodes a frame holding exactly one envelope in the full
// form (broadcasts).
func DecodeEnvelope(frame []byte) (*Envelope, error) {
	recs, err := decodeFrame(frame)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 || recs[0].env == nil {
		return nil, errors.New("want exactly one envelope")
	}
	return recs[0].env, nil
}

// headNonce extracts the nonce of the first envelope in the head of an
// oversized or malformed frame, so the refusal can be answered. The nonce
// leads the envelope body in both forms.
func headNonce(head []byte) (nonce uint64, ok bool) {
	for len(head) > 0 {
		kind := head[0]
		n, ln := binary.Uvarint(head[1:])
		if ln <= 0 {
			return 0, false
		}
		body := head[1+ln:]
		if kind == recEnvelope {
			if len(body) < 8 {
				return 0, false
			}
			return binary.BigEndian.Uint64(body), true
		}
		if n > uint64(len(body)) {
			return 0, false
		}
		head = body[n:]
	}
	return 0, false
}

// DecodeFrame splits a frame into its envelopes and replies (session
// definitions are skipped). It is for tests and debugging tools that speak
// the wire format directly. Envelopes in the session form (those a runtime
// sends under a link session) need their link to decode: they end the
// decoding with an error saying so.
func DecodeFrame(frame []byte) (envs []*Envelope, replies []*Reply, err error) {
	recs, err := decodeFrame(frame)
	for _, r := range recs {
		switch {
		case r.env != nil:
			envs = append(envs, r.env)
		case r.reply != nil:
			replies = append(replies, r.reply)
		}
	}
	return envs, replies, err
}
