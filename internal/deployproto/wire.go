package deployproto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// The hot messages of a bid round — BidRequest, BidReply, the Bid a
// provider signs and the ReleaseRequest that ends a broadcast round — have a compact binary form besides JSON: every
// provider decodes each request and the orchestrator every reply, and
// JSON (with the text forms of MilliCPU and Money) was the largest part
// of their CPU time. The first byte tells the forms apart: a JSON value
// never starts with a byte ≥ 0x80, each binary form starts with its own
// tag. Decoders accept both; a provider answers in the form it was asked
// in, so JSON peers and tools (dms plan's tests, the attack tests) still
// talk JSON.
//
// The binary form is canonical and decoded strictly: unsigned varints of
// minimal length, lengths and counts bounded by what is left and by the
// protocol's limits (MaxNodes, match.MaxGPUs, match.MaxListItems), UTF-8
// strings, finite floats, booleans 0 or 1, map keys in increasing order,
// times with nanoseconds below a second, amounts in the ranges their text
// forms accept, and nothing after the value. Re-encoding a decoded value
// gives the same bytes (FuzzWire checks it).
const (
	tagBidRequest byte = 0xB1
	tagBidReply   byte = 0xB2
	tagBid        byte = 0xB3
	tagRelease    byte = 0xB4
)

// ErrWire is wrapped by every error of the binary decoders.
var ErrWire = errors.New("malformed binary message")

// IsBinary reports whether p is in a binary form (not JSON).
func IsBinary(p []byte) bool { return len(p) > 0 && p[0] >= 0x80 }

// MarshalBidRequest encodes a bid request in binary form.
func MarshalBidRequest(r *BidRequest) []byte {
	w := wbuf(make([]byte, 0, 256))
	w = append(w, tagBidRequest)
	w.str(r.Deployment)
	w.handle(r.Orchestrator)
	w.varint(int64(r.Round))
	w.uvarint(uint64(len(r.Nodes)))
	for i := range r.Nodes {
		n := &r.Nodes[i]
		w.str(n.Name)
		w.request(&n.Request)
		w.str(n.Peer)
		w.strs(n.Credentials)
	}
	return w
}

// UnmarshalBidRequest decodes a bid request in either form: binary
// (MarshalBidRequest) or JSON.
func UnmarshalBidRequest(p []byte) (BidRequest, error) {
	var r BidRequest
	if !IsBinary(p) {
		err := json.Unmarshal(p, &r)
		return r, err
	}
	d := rbuf{b: p}
	d.tag(tagBidRequest)
	r.Deployment = d.str()
	r.Orchestrator = d.handle()
	r.Round = int(d.varint32())
	if n := d.count(MaxNodes); n > 0 {
		r.Nodes = make([]NodeRequest, n)
		for i := range r.Nodes {
			nr := &r.Nodes[i]
			nr.Name = d.str()
			d.request(&nr.Request)
			nr.Peer = d.str()
			nr.Credentials = d.strs(match.MaxListItems)
		}
	}
	return r, d.end()
}

// MarshalReleaseRequest encodes a release in binary form: every provider
// of a broadcast round decodes it.
func MarshalReleaseRequest(r *ReleaseRequest) []byte {
	w := wbuf(make([]byte, 0, 64))
	w = append(w, tagRelease)
	w.str(r.Deployment)
	w.str(r.Reservation)
	w.strs(r.Keep)
	return w
}

// UnmarshalReleaseRequest decodes a release in either form: binary
// (MarshalReleaseRequest) or JSON.
func UnmarshalReleaseRequest(p []byte) (ReleaseRequest, error) {
	var r ReleaseRequest
	if !IsBinary(p) {
		err := json.Unmarshal(p, &r)
		return r, err
	}
	d := rbuf{b: p}
	d.tag(tagRelease)
	r.Deployment = d.str()
	r.Reservation = d.str()
	r.Keep = d.strs(MaxNodes)
	return r, d.end()
}

// MarshalBidReply encodes a bid reply in binary form. Its bid's body must
// be in binary form too (MarshalBid): a binary reply carries no JSON.
func MarshalBidReply(r *BidReply) []byte {
	w := wbuf(make([]byte, 0, 512))
	w = append(w, tagBidReply)
	w.handle(r.Provider)
	w.bool(r.Offer != nil)
	if r.Offer != nil {
		w.offer(r.Offer)
	}
	w.bool(r.Bid != nil)
	if r.Bid != nil {
		w.bytes(r.Bid.Body)
		w.bytes(r.Bid.Signature)
	}
	w.uvarint(uint64(len(r.NoBids)))
	for _, nb := range r.NoBids {
		w.str(nb.Node)
		w.strs(nb.Reasons)
		w.str(nb.Kind)
	}
	return w
}

// UnmarshalBidReply decodes a bid reply in either form. The bid's body is
// not decoded (SignedBid.Open does), only bounded.
func UnmarshalBidReply(p []byte) (BidReply, error) {
	var r BidReply
	if !IsBinary(p) {
		err := json.Unmarshal(p, &r)
		return r, err
	}
	d := rbuf{b: p}
	d.tag(tagBidReply)
	r.Provider = d.handle()
	if d.bool() {
		r.Offer = new(match.Offer)
		d.offer(r.Offer)
	}
	if d.bool() {
		body := d.bytes()
		sig := d.bytes()
		if d.err == nil && !IsBinary(body) {
			d.fail("a binary reply's bid is not binary")
		}
		r.Bid = &SignedBid{Body: body, Signature: sig}
	}
	if n := d.count(MaxNodes + 1); n > 0 { // one per node, or one "*"
		r.NoBids = make([]NoBid, n)
		for i := range r.NoBids {
			nb := &r.NoBids[i]
			nb.Node = d.str()
			nb.Reasons = d.strs(match.MaxListItems)
			nb.Kind = d.str()
		}
	}
	return r, d.end()
}

// MarshalBid encodes a bid in binary form: the body a provider signs
// when it answers a binary request.
func MarshalBid(b *Bid) []byte {
	w := wbuf(make([]byte, 0, 256))
	w = append(w, tagBid)
	w.strs(b.Nodes)
	w.str(b.Reservation)
	w.time(b.Expires)
	w.offer(&b.Offer)
	keys := make([]string, 0, len(b.Latencies))
	for k := range b.Latencies {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.float(b.Latencies[k])
	}
	w.bool(b.DryRun)
	return w
}

// UnmarshalBid decodes a bid in either form.
func UnmarshalBid(p []byte) (Bid, error) {
	var b Bid
	if !IsBinary(p) {
		err := json.Unmarshal(p, &b)
		return b, err
	}
	d := rbuf{b: p}
	d.tag(tagBid)
	b.Nodes = d.strs(MaxNodes)
	b.Reservation = d.str()
	b.Expires = d.time()
	d.offer(&b.Offer)
	if n := d.count(maxLatencies); n > 0 {
		b.Latencies = make(map[string]float64, n)
		prev := ""
		for i := range n {
			k := d.str()
			if i > 0 && k <= prev && d.err == nil {
				d.fail("latencies not in increasing order of peer")
			}
			prev = k
			b.Latencies[k] = d.float()
		}
	}
	b.DryRun = d.bool()
	return b, d.end()
}

// maxLatencies bounds the round trips a bid lists (one per connected
// peer).
const maxLatencies = 4096

// wbuf appends the binary form.
type wbuf []byte

func (w *wbuf) uvarint(v uint64) { *w = binary.AppendUvarint(*w, v) }
func (w *wbuf) varint(v int64)   { *w = binary.AppendVarint(*w, v) }

func (w *wbuf) bool(v bool) {
	if v {
		*w = append(*w, 1)
	} else {
		*w = append(*w, 0)
	}
}

func (w *wbuf) str(s string) {
	w.uvarint(uint64(len(s)))
	*w = append(*w, s...)
}

func (w *wbuf) bytes(b []byte) {
	w.uvarint(uint64(len(b)))
	*w = append(*w, b...)
}

func (w *wbuf) strs(ss []string) {
	w.uvarint(uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}

func (w *wbuf) float(f float64) { *w = binary.LittleEndian.AppendUint64(*w, math.Float64bits(f)) }

// time: 0 for the zero time, else 1, the Unix seconds and the
// nanoseconds (the location is not kept: decoded times are UTC).
func (w *wbuf) time(t time.Time) {
	if t.IsZero() {
		*w = append(*w, 0)
		return
	}
	*w = append(*w, 1)
	w.varint(t.Unix())
	w.uvarint(uint64(t.Nanosecond()))
}

func (w *wbuf) handle(h actor.Handle) {
	w.str(string(h.DID))
	w.str(h.Host)
	w.str(h.Inbox)
}

func (w *wbuf) resources(r *match.Resources) {
	w.varint(int64(r.CPU))
	w.uvarint(uint64(r.RAM))
	w.uvarint(uint64(r.Disk))
	w.uvarint(uint64(len(r.GPUs)))
	for _, g := range r.GPUs {
		w.varint(int64(g.Index))
		w.str(g.Vendor)
		w.str(g.Model)
		w.uvarint(uint64(g.VRAM))
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.varint(r.Extra[k])
	}
}

func (w *wbuf) location(l match.Location) {
	w.str(l.Continent)
	w.str(l.Country)
	w.str(l.Subdivision)
	w.str(l.City)
}

func (w *wbuf) locations(ls []match.Location) {
	w.uvarint(uint64(len(ls)))
	for _, l := range ls {
		w.location(l)
	}
}

func (w *wbuf) window(x match.Window) {
	w.time(x.Start)
	w.time(x.End)
}

func (w *wbuf) request(r *match.Request) {
	w.resources(&r.Resources)
	w.strs(r.Executors)
	w.locations(r.Location.Accept)
	w.locations(r.Location.Reject)
	w.varint(int64(r.MaxPrice))
	w.window(r.Window)
	w.locations(r.Prefer.Locations)
	w.window(r.Prefer.Window)
	wt := r.Prefer.Weights
	w.float(wt.Price)
	w.float(wt.Performance)
	w.float(wt.Location)
	w.float(wt.Time)
}

func (w *wbuf) offer(o *match.Offer) {
	w.resources(&o.Free)
	w.strs(o.Executors)
	w.location(o.Location)
	w.varint(int64(o.Price.CPU))
	w.varint(int64(o.Price.RAM))
	w.varint(int64(o.Price.Disk))
	w.varint(int64(o.Price.GPU))
	p := o.Performance
	for _, f := range [...]float64{p.CPUSingle, p.CPUMulti, p.MemoryMBps, p.DiskWriteMBps, p.DiskReadMBps, p.FsyncP50} {
		w.float(f)
	}
	w.window(o.Available)
}

// rbuf decodes the binary form; the first error sticks and every later
// read returns zero values.
type rbuf struct {
	b   []byte
	s   string // b as a string, made at the first string read: every string decoded shares it
	off int
	err error
}

func (d *rbuf) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrWire, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *rbuf) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes after the message", len(d.b)-d.off)
	}
	return d.err
}

func (d *rbuf) tag(t byte) {
	if len(d.b) == 0 || d.b[0] != t {
		d.fail("not a message of tag %#x", t)
		return
	}
	d.off = 1
}

func (d *rbuf) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *rbuf) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("varint not of minimal length")
		return 0
	}
	d.off += n
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func (d *rbuf) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *rbuf) varint32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("number %d out of range", v)
		return 0
	}
	return int32(v)
}

func (d *rbuf) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("boolean not 0 or 1")
	return false
}

// count reads a list's length, at most max and at most the bytes left
// (every item takes at least one).
func (d *rbuf) count(max int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(max) || n > uint64(len(d.b)-d.off) {
		d.fail("%d items (at most %d)", n, max)
		return 0
	}
	return int(n)
}

func (d *rbuf) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%d bytes, %d left", n, len(d.b)-d.off)
		return nil
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}

// str returns a substring of the message copied once (rbuf.s): one
// allocation per message instead of one per string.
func (d *rbuf) str() string {
	b := d.raw()
	if len(b) == 0 {
		return ""
	}
	if !utf8.Valid(b) {
		d.fail("string not UTF-8")
		return ""
	}
	if d.s == "" {
		d.s = string(d.b)
	}
	start := d.off - len(b)
	return d.s[start:d.off]
}

// bytes returns a copy, nil when empty.
func (d *rbuf) bytes() []byte {
	b := d.raw()
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

func (d *rbuf) strs(max int) []string {
	n := d.count(max)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *rbuf) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 8 {
		d.fail("truncated")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	d.off += 8
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail("number not finite")
		return 0
	}
	return f
}

func (d *rbuf) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail("time flag not 0 or 1")
		return time.Time{}
	}
	sec := d.varint()
	ns := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if ns >= 1e9 {
		d.fail("nanoseconds %d", ns)
		return time.Time{}
	}
	t := time.Unix(sec, int64(ns)).UTC()
	if t.IsZero() || t.Unix() != sec {
		d.fail("time out of range")
		return time.Time{}
	}
	return t
}

func (d *rbuf) handle() actor.Handle {
	return actor.Handle{DID: identity.DID(d.str()), Host: d.str(), Inbox: d.str()}
}

func (d *rbuf) money() match.Money {
	v := d.varint()
	if v < 0 {
		d.fail("negative amount of money")
		return 0
	}
	return match.Money(v)
}

func (d *rbuf) resources(r *match.Resources) {
	cpu := d.varint()
	if cpu < 0 || cpu > match.MaxMilliCPU {
		d.fail("cpu %d millicores out of range", cpu)
	}
	r.CPU = match.MilliCPU(cpu)
	r.RAM = match.Bytes(d.uvarint())
	r.Disk = match.Bytes(d.uvarint())
	if n := d.count(match.MaxGPUs); n > 0 {
		r.GPUs = make([]match.GPU, n)
		for i := range r.GPUs {
			g := &r.GPUs[i]
			g.Index = int(d.varint32())
			g.Vendor = d.str()
			g.Model = d.str()
			g.VRAM = match.Bytes(d.uvarint())
		}
	}
	if n := d.count(match.MaxListItems); n > 0 {
		r.Extra = make(map[string]int64, n)
		prev := ""
		for i := range n {
			k := d.str()
			if i > 0 && k <= prev && d.err == nil {
				d.fail("extra kinds not in increasing order")
			}
			prev = k
			r.Extra[k] = d.varint()
		}
	}
}

func (d *rbuf) location() match.Location {
	return match.Location{Continent: d.str(), Country: d.str(), Subdivision: d.str(), City: d.str()}
}

func (d *rbuf) locations() []match.Location {
	n := d.count(match.MaxListItems)
	if n == 0 {
		return nil
	}
	out := make([]match.Location, n)
	for i := range out {
		out[i] = d.location()
	}
	return out
}

func (d *rbuf) window() match.Window { return match.Window{Start: d.time(), End: d.time()} }

func (d *rbuf) request(r *match.Request) {
	d.resources(&r.Resources)
	r.Executors = d.strs(match.MaxListItems)
	r.Location.Accept = d.locations()
	r.Location.Reject = d.locations()
	r.MaxPrice = d.money()
	r.Window = d.window()
	r.Prefer.Locations = d.locations()
	r.Prefer.Window = d.window()
	r.Prefer.Weights = match.Weights{Price: d.float(), Performance: d.float(), Location: d.float(), Time: d.float()}
}

func (d *rbuf) offer(o *match.Offer) {
	d.resources(&o.Free)
	o.Executors = d.strs(match.MaxListItems)
	o.Location = d.location()
	o.Price = match.Price{CPU: d.money(), RAM: d.money(), Disk: d.money(), GPU: d.money()}
	o.Performance = match.Performance{CPUSingle: d.float(), CPUMulti: d.float(), MemoryMBps: d.float(),
		DiskWriteMBps: d.float(), DiskReadMBps: d.float(), FsyncP50: d.float()}
	o.Available = d.window()
}
