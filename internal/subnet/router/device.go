package router

import (
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/dmsnet/dms/internal/subnet"
)

// maxReadErrors is how many failed reads in a row end a device's reader
// (a device that fails for good, not a closed one, which ends it at once).
const maxReadErrors = 100

// readDevice reads a's device until it is closed and routes each packet.
func (r *Router) readDevice(a *attachment) {
	defer r.wg.Done()
	defer close(a.done)
	bs := max(a.dev.BatchSize(), 1)
	pkts := make([]*packet, bs)
	bufs := make([][]byte, bs)
	sizes := make([]int, bs)
	one := make([][]byte, 1)
	nonce := make([]byte, chacha20poly1305.NonceSize) // preseal's
	outs := make([]*outQueue, bs)                     // where pkts[i] goes, if to a peer
	timer := time.NewTimer(time.Hour)                 // sendWithin's
	timer.Stop()
	for i := range pkts {
		pkts[i] = getPacket()
		bufs[i] = pkts[i].buf[:]
	}
	defer func() {
		for _, p := range pkts {
			putPacket(p)
		}
	}()
	errs := 0
	for {
		n, err := a.dev.Read(bufs, sizes, subnet.Offset)
		v := a.dep.view.Load()
		for i := 0; i < n && v != nil; i++ {
			p := pkts[i]
			p.n = sizes[i]
			m, verdict, why, rt := v.fromDevice(a, p.data())
			p.n = m
			switch verdict {
			case verdictDrop:
				r.drop(a.dep, why, p.data())
			case verdictLocal:
				one[0] = p.withHead()
				if _, err := rt.att.dev.Write(one, subnet.Offset); err == nil {
					r.count.delivered.Add(1)
					a.dep.count.delivered.Add(1)
				}
			case verdictPeer:
				// sealed now, queued after the whole read: the queue's
				// writer, woken by the first, then finds the batch
				// there for one write
				rt.out.preseal(p, nonce)
				outs[i] = rt.out
			case verdictDNS:
				r.serveDNS(v, a, p.data())
			}
		}
		if n > 0 && n <= txInline && sameSealed(outs[:n], pkts) && outs[0].sendNow(pkts[:n]) {
			// a small read to one peer whose queue was idle: sent
			for i := range outs[:n] {
				outs[i] = nil
				pkts[i] = getPacket()
				bufs[i] = pkts[i].buf[:]
			}
		}
		wait := true // one wait for a full queue per read
		for i := range outs[:n] {
			o := outs[i]
			if o == nil {
				continue
			}
			outs[i] = nil
			p := pkts[i]
			ok := o.send(p)
			if !ok && wait {
				ok = o.sendWithin(p, timer)
				wait = ok
			}
			if !ok {
				if p.sealed != nil {
					p.sealed = nil
					r.drop(a.dep, reasonQueueFull, nil)
				} else {
					r.drop(a.dep, reasonQueueFull, p.data())
				}
				continue
			}
			pkts[i] = getPacket()
			bufs[i] = pkts[i].buf[:]
		}
		if err == nil {
			errs = 0
			continue
		}
		select {
		case <-a.closed:
			return
		default:
		}
		if errs++; errs >= maxReadErrors {
			r.log.Warn("subnet device fails, detaching it", "deployment_id", a.dep.id, "allocation", a.alloc, "err", err)
			return
		}
	}
}

// sameSealed reports whether every packet goes to the same queue, sealed
// for the same session by preseal.
func sameSealed(outs []*outQueue, pkts []*packet) bool {
	for i, o := range outs {
		if o == nil || o != outs[0] || pkts[i].sealed == nil || pkts[i].sealed != pkts[0].sealed {
			return false
		}
	}
	return true
}

// serveDNS hands a DNS query of a's guest to Config.DNS; the answer goes
// back to a's device, from the address the query was sent to: the
// gateway or subnet.Resolver.
func (r *Router) serveDNS(v *view, a *attachment, pkt []byte) {
	if r.dns == nil {
		r.drop(a.dep, reasonGateway, pkt)
		return
	}
	from := v.gwAddr
	if _, _, dst, _ := header(pkt); dst == resolver {
		from = subnet.Resolver
	}
	r.dns.ServePacket(v.names, from, pkt, func(reply []byte) { r.reply(a, reply) })
}

// reply writes a DNS answer to a's device.
func (r *Router) reply(a *attachment, pkt []byte) {
	n, _, _, ok := header(pkt)
	if !ok || n > maxPacket {
		r.drop(a.dep, reasonMalformed, pkt)
		return
	}
	p := getPacket()
	defer putPacket(p)
	p.n = copy(p.buf[subnet.Offset:], pkt[:n])
	if _, err := a.dev.Write([][]byte{p.withHead()}, subnet.Offset); err == nil {
		r.count.delivered.Add(1)
		a.dep.count.delivered.Add(1)
	}
}
