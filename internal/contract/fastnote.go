package contract

import (
	"bytes"
	"strconv"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// parseNoteFast decodes a note body in exactly the layout Issue writes
// (encoding/json of Note: the fields in order, no spaces, optional ones
// omitted when empty). It reports false for anything else, and the caller
// then decodes with encoding/json: the fast path accepts only bytes that
// encoding/json decodes to the same note (FuzzNoteFastPath checks it), so
// it changes the speed of VerifyChain and CheckNote, never a result.
// Decoding 1000 notes this way takes a fraction of encoding/json's time.
func parseNoteFast(b []byte) (*Note, bool) {
	p := fastParser{b: b}
	n := new(Note)
	ok := p.lit(`{"contract":"`) && p.hash(&n.Contract) && p.lit(`","seq":`) && p.uint(&n.Seq)
	if ok && p.peek(`,"prev":"`) {
		ok = p.lit(`,"prev":"`) && p.hash(&n.Prev) && p.lit(`"`)
	}
	ok = ok && p.lit(`,"time":`) && p.time(&n.Time) &&
		p.lit(`,"usage":{"cpu_us":`) && p.uint(&n.Usage.CPUMicros) &&
		p.lit(`,"memory_byte_s":`) && p.uint(&n.Usage.MemoryByteSeconds) &&
		p.lit(`,"wall_ms":`) && p.uint(&n.Usage.WallMillis)
	if ok && p.peek(`,"net_bytes":`) {
		ok = p.lit(`,"net_bytes":`) && p.uint(&n.Usage.NetBytes)
	}
	ok = ok && p.lit(`},"amount":`) && p.money(&n.Amount)
	if ok && p.peek(`,"final":true`) {
		ok = p.lit(`,"final":true`)
		n.Final = true
	}
	ok = ok && p.lit(`}`) && len(p.b) == 0
	return n, ok
}

// fastParser consumes b from the front.
type fastParser struct{ b []byte }

func (p *fastParser) peek(s string) bool { return bytes.HasPrefix(p.b, []byte(s)) }

func (p *fastParser) lit(s string) bool {
	if !p.peek(s) {
		return false
	}
	p.b = p.b[len(s):]
	return true
}

// hash takes 64 lowercase hex digits.
func (p *fastParser) hash(dst *string) bool {
	if len(p.b) < 64 || !isHash(string(p.b[:64])) {
		return false
	}
	*dst, p.b = string(p.b[:64]), p.b[64:]
	return true
}

// digits returns the length of the run of decimal digits at the front.
func (p *fastParser) digits(from int) int {
	i := from
	for i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9' {
		i++
	}
	return i
}

// uint takes a JSON integer (no sign, no leading zero) that fits 64 bits.
func (p *fastParser) uint(dst *uint64) bool {
	i := p.digits(0)
	if i == 0 || (i > 1 && p.b[0] == '0') || (i < len(p.b) && (p.b[i] == '.' || p.b[i] == 'e' || p.b[i] == 'E')) {
		return false
	}
	v, err := strconv.ParseUint(string(p.b[:i]), 10, 64)
	if err != nil {
		return false
	}
	*dst, p.b = v, p.b[i:]
	return true
}

// money takes a JSON number of the form digits[.digits] as
// match.Money.UnmarshalJSON reads it.
func (p *fastParser) money(dst *match.Money) bool {
	i := p.digits(0)
	if i == 0 || (i > 1 && p.b[0] == '0') {
		return false
	}
	if i < len(p.b) && p.b[i] == '.' {
		j := p.digits(i + 1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(p.b) && (p.b[i] == 'e' || p.b[i] == 'E') {
		return false
	}
	var m match.Money
	if m.UnmarshalJSON(p.b[:i]) != nil {
		return false
	}
	*dst, p.b = m, p.b[i:]
	return true
}

// time takes a JSON string without escapes as time.Time.UnmarshalJSON
// reads it.
func (p *fastParser) time(dst *time.Time) bool {
	if len(p.b) < 2 || p.b[0] != '"' {
		return false
	}
	end := bytes.IndexByte(p.b[1:], '"')
	if end < 0 {
		return false
	}
	s := p.b[:end+2]
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	var t time.Time
	if t.UnmarshalJSON(s) != nil {
		return false
	}
	*dst, p.b = t, p.b[len(s):]
	return true
}

// appendNote appends n as encoding/json writes it (the layout
// parseNoteFast reads), without reflection: the provider encodes a note
// for every contract at every interval. It reports false for a note
// encoding/json would write otherwise or refuse (a hash that is not hex,
// a year outside 0–9999, a time not in UTC); the caller then uses
// encoding/json (TestAppendNote and FuzzAppendNote compare the two).
func appendNote(b []byte, n *Note) ([]byte, bool) {
	if !isHash(n.Contract) || n.Prev != "" && !isHash(n.Prev) {
		return nil, false
	}
	if y := n.Time.Year(); y < 0 || y > 9999 || n.Time.Location() != time.UTC {
		return nil, false
	}
	b = append(b, `{"contract":"`...)
	b = append(b, n.Contract...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, n.Seq, 10)
	if n.Prev != "" {
		b = append(append(append(b, `,"prev":"`...), n.Prev...), '"')
	}
	b = append(b, `,"time":"`...)
	b = append(n.Time.AppendFormat(b, time.RFC3339Nano), '"')
	b = append(b, `,"usage":{"cpu_us":`...)
	b = strconv.AppendUint(b, n.Usage.CPUMicros, 10)
	b = append(b, `,"memory_byte_s":`...)
	b = strconv.AppendUint(b, n.Usage.MemoryByteSeconds, 10)
	b = append(b, `,"wall_ms":`...)
	b = strconv.AppendUint(b, n.Usage.WallMillis, 10)
	if n.Usage.NetBytes != 0 {
		b = append(b, `,"net_bytes":`...)
		b = strconv.AppendUint(b, n.Usage.NetBytes, 10)
	}
	b = append(b, `},"amount":`...)
	b = append(b, n.Amount.String()...)
	if n.Final {
		b = append(b, `,"final":true`...)
	}
	return append(b, '}'), true
}
