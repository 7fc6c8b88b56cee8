package dns

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// The answers of the internal zone are encoded by hand, without
// miekg/dns, so that a lookup of <alloc>.internal allocates nothing but
// its reply packet: every connection a program opens to a peer by name
// starts with one.

// Zone is the domain of the allocations' names.
const Zone = "internal"

// TTL of every local answer and of its negative caching, in seconds:
// short, as the table may change at any time.
const TTL = 5

// DNS header flags and codes this file uses (RFC 1035 §4.1.1).
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7

	opcodeMask = 0xf << 11

	rcodeSuccess  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4

	typeA    = 1
	typeSOA  = 6
	typePTR  = 12
	typeOPT  = 41
	typeANY  = 255
	classIN  = 1
	classANY = 255

	headerLen = 12
	// ednsSize is the UDP payload size the gateway advertises in its
	// own OPT records (the DNS flag day 2020 value).
	ednsSize = 1232
)

// query is what the local zone needs of a DNS query: its header, its one
// question as sent (for the echo) and its name in lower case, dotted.
type query struct {
	id, flags     uint16
	question      []byte // the question section as sent: name, type, class
	qtype, qclass uint16
	name          [255]byte // lower case, labels joined by '.', no trailing dot
	nameLen       int
	odd           bool // a label holds a '.': never a local name
	edns          bool // the query has an OPT record
}

func (q *query) lower() []byte { return q.name[:q.nameLen] }

func (q *query) opcode() int { return int(q.flags>>11) & 0xf }

// parse outcomes
const (
	parseOK      = iota
	parseDrop    // not a query at all: no reply
	parseFormErr // a query the gateway cannot read: FORMERR
)

// parse reads msg into q.
func (q *query) parse(msg []byte) int {
	if len(msg) < headerLen {
		return parseDrop
	}
	q.id = binary.BigEndian.Uint16(msg[0:2])
	q.flags = binary.BigEndian.Uint16(msg[2:4])
	if q.flags&flagQR != 0 {
		return parseDrop // a response: never answer one
	}
	if binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return parseFormErr
	}
	off := headerLen
	for {
		if off >= len(msg) {
			return parseFormErr
		}
		l := int(msg[off])
		off++
		if l == 0 {
			break
		}
		if l&0xc0 != 0 || off+l > len(msg) || q.nameLen+l+1 > len(q.name) {
			return parseFormErr // a compression pointer in the question, or too long
		}
		if q.nameLen > 0 {
			q.name[q.nameLen] = '.'
			q.nameLen++
		}
		for _, c := range msg[off : off+l] {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case c == '.':
				q.odd = true
			}
			q.name[q.nameLen] = c
			q.nameLen++
		}
		off += l
	}
	if off+4 > len(msg) {
		return parseFormErr
	}
	q.qtype = binary.BigEndian.Uint16(msg[off : off+2])
	q.qclass = binary.BigEndian.Uint16(msg[off+2 : off+4])
	q.question = msg[headerLen : off+4]
	q.findOPT(msg, off+4)
	return parseOK
}

// findOPT looks for an OPT record among the records after the question
// (a query normally has none but the OPT); a section it cannot read
// counts as no EDNS.
func (q *query) findOPT(msg []byte, off int) {
	n := int(binary.BigEndian.Uint16(msg[6:8])) + int(binary.BigEndian.Uint16(msg[8:10])) + int(binary.BigEndian.Uint16(msg[10:12]))
	for range n {
		// The owner name: labels, ending with a root label or a pointer.
		for {
			if off >= len(msg) {
				return
			}
			l := int(msg[off])
			if l&0xc0 == 0xc0 {
				off += 2
				break
			}
			if l&0xc0 != 0 {
				return
			}
			off += 1 + l
			if l == 0 {
				break
			}
		}
		if off+10 > len(msg) {
			return
		}
		typ := binary.BigEndian.Uint16(msg[off : off+2])
		rdlen := int(binary.BigEndian.Uint16(msg[off+8 : off+10]))
		off += 10 + rdlen
		if off > len(msg) {
			return
		}
		if typ == typeOPT {
			q.edns = true
		}
	}
}

// answer is a local answer being encoded after headerRoom bytes of room
// for the IPv4 and UDP headers.
type answer struct {
	buf                    []byte
	an, ns                 uint16
	zoneOff                int // offset of the zone's label in the message, for compression
	rcode                  int
	authoritative, withOPT bool
}

// local answers q from names if its name is one the gateway owns:
// <alloc>.internal, the zone itself and a name under it, and the reverse
// name of an allocation's address. It returns the DNS message (after
// headerRoom bytes of room) or nil when the name is to be forwarded.
func local(names map[string]netip.Addr, q *query) []byte {
	if q.odd || q.qclass != classIN && q.qclass != classANY {
		return nil
	}
	name := q.lower()
	switch {
	case bytes.Equal(name, []byte(Zone)):
		a := newAnswer(q, rcodeSuccess)
		a.zoneOff = headerLen
		return a.soa().finish()
	case bytes.HasSuffix(name, []byte("."+Zone)):
		label := name[:len(name)-len(Zone)-1]
		addr, ok := names[string(label)] // no allocation: the compiler reads the map with the bytes
		if !ok || bytes.IndexByte(label, '.') >= 0 {
			a := newAnswer(q, rcodeNXDomain)
			a.zoneOff = headerLen + len(label) + 1
			return a.soa().finish()
		}
		a := newAnswer(q, rcodeSuccess)
		a.zoneOff = headerLen + len(label) + 1
		if q.qtype != typeA && q.qtype != typeANY {
			return a.soa().finish() // NOERROR, no data: a v4-only name
		}
		a.rr(typeA, 4)
		ip := addr.As4()
		a.buf = append(a.buf, ip[:]...)
		a.an++
		return a.finish()
	}
	addr, ok := reverse(name)
	if !ok {
		return nil
	}
	for alloc, v := range names {
		if v != addr {
			continue
		}
		a := newAnswer(q, rcodeSuccess)
		if q.qtype != typePTR && q.qtype != typeANY {
			return a.finish()
		}
		a.rr(typePTR, uint16(1+len(alloc)+1+len(Zone)+1))
		a.buf = append(a.buf, byte(len(alloc)))
		a.buf = append(a.buf, alloc...)
		a.buf = append(a.buf, byte(len(Zone)))
		a.buf = append(a.buf, Zone...)
		a.buf = append(a.buf, 0)
		a.an++
		return a.finish()
	}
	return nil
}

// reverse parses d.c.b.a.in-addr.arpa.
func reverse(name []byte) (netip.Addr, bool) {
	rest, ok := bytes.CutSuffix(name, []byte(".in-addr.arpa"))
	if !ok {
		return netip.Addr{}, false
	}
	var ip [4]byte
	for i := 3; i >= 0; i-- {
		label := rest
		if i > 0 {
			var found bool
			label, rest, found = bytes.Cut(rest, []byte{'.'})
			if !found {
				return netip.Addr{}, false
			}
		}
		if len(label) == 0 || len(label) > 3 || len(label) > 1 && label[0] == '0' {
			return netip.Addr{}, false
		}
		v := 0
		for _, c := range label {
			if c < '0' || c > '9' {
				return netip.Addr{}, false
			}
			v = v*10 + int(c-'0')
		}
		if v > 255 {
			return netip.Addr{}, false
		}
		ip[i] = byte(v)
	}
	return netip.AddrFrom4(ip), true
}

// maxLocal bounds a local answer: header, question, one answer or SOA, OPT.
const maxLocal = headerLen + 255 + 4 + 2 + 10 + 2 + len(Zone) + 2 + 64 + 11 + 64

func newAnswer(q *query, rcode int) *answer {
	a := &answer{rcode: rcode, authoritative: true, withOPT: q.edns}
	a.buf = make([]byte, headerRoom, headerRoom+maxLocal)
	a.buf = binary.BigEndian.AppendUint16(a.buf, q.id)
	a.buf = binary.BigEndian.AppendUint16(a.buf, q.flags&(flagRD|opcodeMask))
	a.buf = append(a.buf, 0, 0, 0, 0, 0, 0, 0, 0) // counts: finish
	a.buf = append(a.buf, q.question...)
	return a
}

// refusal is an answer with rcode and no records, the question echoed
// when there is one (FORMERR, NOTIMP).
func refusal(q *query, rcode int) []byte {
	a := newAnswer(q, rcode)
	a.authoritative = false
	if q.question == nil {
		b := a.finish()
		b[headerRoom+5] = 0 // no question
		return b
	}
	return a.finish()
}

// rr appends the fixed part of an answer record for the question's name.
func (a *answer) rr(typ, rdlen uint16) {
	a.buf = append(a.buf, 0xc0, headerLen) // pointer to the question's name
	a.buf = binary.BigEndian.AppendUint16(a.buf, typ)
	a.buf = binary.BigEndian.AppendUint16(a.buf, classIN)
	a.buf = binary.BigEndian.AppendUint32(a.buf, TTL)
	a.buf = binary.BigEndian.AppendUint16(a.buf, rdlen)
}

// soa appends the zone's SOA to the authority section, for negative
// caching (RFC 2308): ns.internal. hostmaster.internal., all times TTL.
func (a *answer) soa() *answer {
	ptr := []byte{0xc0 | byte(a.zoneOff>>8), byte(a.zoneOff)}
	a.buf = append(a.buf, ptr...)
	a.buf = binary.BigEndian.AppendUint16(a.buf, typeSOA)
	a.buf = binary.BigEndian.AppendUint16(a.buf, classIN)
	a.buf = binary.BigEndian.AppendUint32(a.buf, TTL)
	a.buf = binary.BigEndian.AppendUint16(a.buf, 1+2+2+1+10+2+5*4)
	a.buf = append(a.buf, 2, 'n', 's')
	a.buf = append(a.buf, ptr...)
	a.buf = append(a.buf, 10, 'h', 'o', 's', 't', 'm', 'a', 's', 't', 'e', 'r')
	a.buf = append(a.buf, ptr...)
	for _, v := range []uint32{1, TTL, TTL, TTL, TTL} { // serial, refresh, retry, expire, minimum
		a.buf = binary.BigEndian.AppendUint32(a.buf, v)
	}
	a.ns++
	return a
}

// finish writes the header's flags and counts and the OPT record.
func (a *answer) finish() []byte {
	var ar uint16
	if a.withOPT {
		a.buf = append(a.buf, 0) // root
		a.buf = binary.BigEndian.AppendUint16(a.buf, typeOPT)
		a.buf = binary.BigEndian.AppendUint16(a.buf, ednsSize)
		a.buf = append(a.buf, 0, 0, 0, 0, 0, 0) // extended rcode, version, flags; no options
		ar = 1
	}
	h := a.buf[headerRoom:]
	flags := uint16(flagQR|flagRA) | uint16(a.rcode)
	if a.authoritative {
		flags |= flagAA
	}
	binary.BigEndian.PutUint16(h[2:4], flags|binary.BigEndian.Uint16(h[2:4]))
	binary.BigEndian.PutUint16(h[4:6], 1)
	binary.BigEndian.PutUint16(h[6:8], a.an)
	binary.BigEndian.PutUint16(h[8:10], a.ns)
	binary.BigEndian.PutUint16(h[10:12], ar)
	return a.buf
}
