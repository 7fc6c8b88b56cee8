package actor

import "sync"

// sentSends keeps the last one-way envelopes sent to other hosts, bounded
// in count and payload bytes, oldest dropped first: enough to resend the
// few that a receiver refuses at once because it evicted their session.
// An envelope that is not refused simply ages out. The envelopes are copied
// into a fixed ring, so keeping one allocates nothing and the sender's
// envelope need not outlive its Send.
type sentSends struct {
	mu    sync.Mutex
	ring  [sentKeep]sentSend // guarded by mu
	head  int                // index of the oldest; guarded by mu
	n     int                // envelopes held; guarded by mu
	bytes int                // payload bytes held; guarded by mu
}

type sentSend struct {
	from *Actor
	env  Envelope
}

const (
	sentKeep  = 256     // one-way envelopes kept
	sentBytes = 1 << 20 // their payloads together; a larger one is not kept
)

// keep remembers env, sent by from.
func (k *sentSends) keep(from *Actor, env *Envelope) {
	n := len(env.Payload)
	if n > sentBytes/4 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n == sentKeep {
		// Full: the new envelope goes into the oldest one's slot, which
		// is not cleared first (one copy instead of two).
		k.dropOldest(false)
	}
	for k.n > 0 && k.bytes+n > sentBytes {
		k.dropOldest(true)
	}
	k.ring[(k.head+k.n)%sentKeep] = sentSend{from: from, env: *env}
	k.n++
	k.bytes += n
}

// dropOldest forgets the oldest envelope (k.n > 0); with zero, its slot
// is zeroed (else the caller overwrites it at once: the ring was full).
func (k *sentSends) dropOldest(zero bool) {
	k.bytes -= len(k.ring[k.head].env.Payload)
	if zero {
		k.ring[k.head] = sentSend{}
	}
	k.head = (k.head + 1) % sentKeep
	k.n--
}

// take removes and returns the envelope with nonce sent to host.
func (k *sentSends) take(nonce uint64, host string) (sentSend, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := k.n - 1; i >= 0; i-- {
		j := (k.head + i) % sentKeep
		e := k.ring[j]
		if e.env.Nonce != nonce || e.env.To.Host != host {
			continue
		}
		// Close the gap: move the newer ones back by one.
		for m := i; m < k.n-1; m++ {
			k.ring[(k.head+m)%sentKeep] = k.ring[(k.head+m+1)%sentKeep]
		}
		k.ring[(k.head+k.n-1)%sentKeep] = sentSend{}
		k.n--
		k.bytes -= len(e.env.Payload)
		return e, true
	}
	return sentSend{}, false
}
