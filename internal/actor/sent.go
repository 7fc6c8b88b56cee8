package actor

import "sync"

// sentSends keeps the last one-way envelopes sent to other hosts, bounded
// in count and payload bytes, oldest dropped first: enough to resend the
// few that a receiver refuses at once because it evicted their session.
// An envelope that is not refused simply ages out.
type sentSends struct {
	mu    sync.Mutex
	q     []sentSend // oldest first; guarded by mu
	bytes int        // payload bytes in q; guarded by mu
}

type sentSend struct {
	from *Actor
	env  *Envelope
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
	for len(k.q) > 0 && (len(k.q) >= sentKeep || k.bytes+n > sentBytes) {
		k.bytes -= len(k.q[0].env.Payload)
		k.q[0] = sentSend{}
		k.q = k.q[1:]
	}
	k.q = append(k.q, sentSend{from: from, env: env})
	k.bytes += n
}

// take removes and returns the envelope with nonce sent to host.
func (k *sentSends) take(nonce uint64, host string) (sentSend, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := len(k.q) - 1; i >= 0; i-- {
		if e := k.q[i]; e.env.Nonce == nonce && e.env.To.Host == host {
			k.bytes -= len(e.env.Payload)
			k.q = append(k.q[:i], k.q[i+1:]...)
			return e, true
		}
	}
	return sentSend{}, false
}
