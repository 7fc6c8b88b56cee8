package contract

import (
	"bytes"
	"encoding/json"
	"math"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// decodeNote checks that hash is the hash of body and decodes a
// well-formed note from it.
func decodeNote(hash string, body []byte) (*Note, error) {
	if len(body) > MaxEncoded {
		return nil, refuse(ErrMalformed, "note body is %d bytes, at most %d", len(body), MaxEncoded)
	}
	if !isHash(hash) {
		return nil, refuse(ErrMalformed, "note hash %q is not a hex sha-256", short(hash))
	}
	if hashHex(body) != hash {
		return nil, refuse(ErrMalformed, "note hash %s is not the hash of its body", hash)
	}
	n, ok := parseNoteFast(body)
	if !ok {
		n = new(Note)
		if err := decodeStrict(body, n); err != nil {
			return nil, refuse(ErrMalformed, "note body: %v", err)
		}
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// validate checks the note's fields on their own.
func (n *Note) validate() error {
	switch {
	case !isHash(n.Contract):
		return refuse(ErrMalformed, "note's contract %q is not a hex sha-256", short(n.Contract))
	case n.Seq == 0:
		return refuse(ErrMalformed, "note seq missing (notes count from 1)")
	case n.Seq == 1 && n.Prev != "":
		return refuse(ErrMalformed, "note 1 has a previous note")
	case n.Seq > 1 && !isHash(n.Prev):
		return refuse(ErrMalformed, "note %d: prev %q is not a hex sha-256", n.Seq, short(n.Prev))
	case n.Time.IsZero():
		return refuse(ErrMalformed, "note %d: time missing", n.Seq)
	case n.Amount < 0:
		return refuse(ErrMalformed, "note %d: negative amount", n.Seq)
	}
	return nil
}

// view is the decoded note without changing n.
func (n *SignedNote) view() (*Note, error) {
	if n == nil {
		return nil, refuse(ErrMalformed, "no note")
	}
	// Body unchanged since it was hashed: comparing it with a copy costs
	// a fraction of hashing it again (a note is viewed several times on
	// its way: Open, CheckNote, as the last note of the next).
	if n.note != nil && n.noteOf == n.Hash && bytes.Equal(n.Body, n.bodyOf) {
		return n.note, nil
	}
	return decodeNote(n.Hash, n.Body)
}

// Open checks a decoded note: Hash is the hash of Body and Body decodes.
// Signatures are checked by CheckNote and Accepted. Open must not run
// concurrently with other methods of n.
func (n *SignedNote) Open() error {
	v, err := n.view()
	if err != nil {
		return err
	}
	if v != n.note || n.noteOf != n.Hash {
		n.note, n.noteOf, n.bodyOf = v, n.Hash, bytes.Clone(n.Body)
	}
	return nil
}

// Clone returns a deep copy of n that keeps what was checked of it: its
// decoded note (used again only while the body hashes to Hash) and the
// signatures that verified (each memo holds only for the same hash,
// signer and signature bytes). A ledger that settles a note the node
// has just checked or signed then need not verify it again.
func (n *SignedNote) Clone() *SignedNote {
	if n == nil {
		return nil
	}
	cp := &SignedNote{Hash: n.Hash, Body: bytes.Clone(n.Body), ProviderSig: bytes.Clone(n.ProviderSig), RequesterSig: bytes.Clone(n.RequesterSig),
		noteOf: n.noteOf, bodyOf: n.bodyOf, provOK: n.provOK.clone(), reqOK: n.reqOK.clone()}
	if n.note != nil {
		v := *n.note
		cp.note = &v
	}
	return cp
}

// Note returns the decoded note (after Issue or Open).
func (n *SignedNote) Note() *Note { return n.note }

// Issue is the provider's next note: Seq one above prev's (1 without
// prev), chained to prev's hash, the amount Terms.Amount(u), signed with
// key (the terms' Provider). Its time is at in UTC. Issue refuses a note
// after a final one (ErrClosed) and usage below prev's (ErrRegress).
func (c *Contract) Issue(key *identity.Key, prev *SignedNote, at time.Time, u Usage, final bool) (*SignedNote, error) {
	if key == nil {
		return nil, refuse(ErrWrongParty, "no provider key")
	}
	t, _, err := c.check()
	if err != nil {
		return nil, err
	}
	if key.DID() != t.Provider {
		return nil, refuse(ErrWrongParty, "contract %s names provider %s, the key is %s", c.ID, t.Provider.Short(), key.DID().Short())
	}
	if at.IsZero() {
		return nil, refuse(ErrMalformed, "note time missing")
	}
	nt := &Note{Contract: c.ID, Seq: 1, Time: at.Round(0).UTC(), Usage: u, Amount: t.Amount(u), Final: final}
	if prev != nil {
		p, err := prev.view()
		if err != nil {
			return nil, err
		}
		if p.Contract != c.ID {
			return nil, refuse(ErrUnknown, "previous note is of contract %s, not %s", p.Contract, c.ID)
		}
		if p.Final {
			return nil, refuse(ErrClosed, "note %d of contract %s was final", p.Seq, c.ID)
		}
		if p.Seq == math.MaxUint64 {
			return nil, refuse(ErrMalformed, "note seq overflows")
		}
		if err := regress(p, nt); err != nil {
			return nil, err
		}
		nt.Seq, nt.Prev = p.Seq+1, prev.Hash
	}
	body, ok := appendNote(make([]byte, 0, 384), nt)
	if !ok {
		if body, err = json.Marshal(nt); err != nil {
			return nil, refuse(ErrMalformed, "encode note: %v", err)
		}
	}
	if len(body) > MaxEncoded {
		return nil, refuse(ErrMalformed, "note body is %d bytes, at most %d", len(body), MaxEncoded)
	}
	h := hashHex(body)
	sn := &SignedNote{Hash: h, Body: body, ProviderSig: key.Sign([]byte(notePrefix + h)), note: nt, noteOf: h, bodyOf: bytes.Clone(body)}
	sn.provOK = memo(h, t.Provider, sn.ProviderSig)
	return sn, nil
}

// regress refuses a counter of n below p's.
func regress(p, n *Note) error {
	for _, x := range [...]struct {
		what     string
		was, now uint64
	}{
		{"cpu_us", p.Usage.CPUMicros, n.Usage.CPUMicros},
		{"memory_byte_s", p.Usage.MemoryByteSeconds, n.Usage.MemoryByteSeconds},
		{"wall_ms", p.Usage.WallMillis, n.Usage.WallMillis},
		{"net_bytes", p.Usage.NetBytes, n.Usage.NetBytes},
	} {
		if x.now < x.was {
			return refuse(ErrRegress, "note %d: %s goes from %d back to %d", n.Seq, x.what, x.was, x.now)
		}
	}
	if n.Amount < p.Amount {
		return refuse(ErrRegress, "note %d: amount goes from %s back to %s", n.Seq, p.Amount, n.Amount)
	}
	return nil
}

// follow checks that note n (hash h) is the next one after last (hash
// lh; nil before the first note) under terms t: the chain, the counters
// and the amount. Signatures are the caller's.
func follow(t *Terms, last *Note, lh string, n *Note, h string) error {
	if last == nil {
		if n.Seq != 1 {
			return refuse(ErrOutOfOrder, "note %d before note 1", n.Seq)
		}
	} else {
		switch {
		case h == lh:
			return refuse(ErrReplay, "note %d was already accepted", n.Seq)
		case n.Seq < last.Seq:
			return refuse(ErrReplay, "note %d is older than the last accepted note %d", n.Seq, last.Seq)
		case last.Final:
			return refuse(ErrClosed, "note %d after the final note %d", n.Seq, last.Seq)
		case n.Seq == last.Seq:
			return refuse(ErrOutOfOrder, "a second, different note %d", n.Seq)
		case n.Seq != last.Seq+1:
			return refuse(ErrOutOfOrder, "note %d after note %d", n.Seq, last.Seq)
		case n.Prev != lh:
			return refuse(ErrOutOfOrder, "note %d does not chain to note %d (prev %s, want %s)", n.Seq, last.Seq, n.Prev, lh)
		}
		if err := regress(last, n); err != nil {
			return err
		}
	}
	if want := t.Amount(n.Usage); n.Amount != want {
		return refuse(ErrAmount, "note %d says %s, the price vector gives %s", n.Seq, n.Amount, want)
	}
	return nil
}

// CheckNote is the requester's check of the provider's next note under c,
// last being the last note it accepted (nil before the first): the
// provider's signature, the contract (signed by both), seq and prev
// following last, no counter going back, the amount equal to Terms.Amount
// of the usage, no note after a final one. The budget is the caller's (it
// spans the deployment's contracts). Refusals are *RefusalError; a note
// equal to last is ErrReplay. CheckNote opens n (see Open).
func CheckNote(c *Contract, last, n *SignedNote) error {
	if n == nil {
		return refuse(ErrMalformed, "no note")
	}
	t, provSigned, err := c.check()
	if err != nil {
		return err
	}
	if !provSigned {
		return refuse(ErrTerms, "contract %s is not signed by its provider", c.ID)
	}
	if err := n.Open(); err != nil {
		return err
	}
	nt := n.note
	if nt.Contract != c.ID {
		return refuse(ErrUnknown, "note %d is of contract %s, not %s", nt.Seq, nt.Contract, c.ID)
	}
	// A signature that verified in a batch (VerifyProviderSigs) holds
	// here; it is verified alone again before it is settled (Accepted).
	if !n.provOK.holds(n.Hash, t.Provider, n.ProviderSig, true) {
		if !verifySig(&n.provOK, notePrefix, n.Hash, t.Provider, n.ProviderSig) {
			return refuse(ErrSignature, "note %d of contract %s is not signed by its provider %s", nt.Seq, c.ID, t.Provider.Short())
		}
		n.provOK = memo(n.Hash, t.Provider, n.ProviderSig)
	}
	var ln *Note
	if last != nil {
		if ln, err = last.view(); err != nil {
			return refuse(ErrMalformed, "last accepted note: %v", err)
		}
		if ln.Contract != c.ID {
			return refuse(ErrUnknown, "last accepted note is of contract %s, not %s", ln.Contract, c.ID)
		}
	}
	return follow(t, ln, lastHash(last), nt, n.Hash)
}

func lastHash(n *SignedNote) string {
	if n == nil {
		return ""
	}
	return n.Hash
}

// Countersign adds the requester's signature to a checked note.
func (n *SignedNote) Countersign(key *identity.Key) {
	if n == nil || key == nil {
		return
	}
	n.RequesterSig = key.Sign([]byte(acceptPrefix + n.Hash))
	n.reqOK = memo(n.Hash, key.DID(), n.RequesterSig)
}

// Accepted reports whether n carries the provider's and the requester's
// valid signatures under c (and is a note of c). Signatures this package
// made or checked on the same n are not verified again: a provider that
// gets its note back countersigned can copy the RequesterSig onto the
// note Issue returned and call Accepted there (one verification, not two).
func (n *SignedNote) Accepted(c *Contract) bool {
	t, _, err := c.check()
	if err != nil {
		return false
	}
	v, err := n.view()
	if err != nil || v.Contract != c.ID {
		return false
	}
	return verifySig(&n.provOK, notePrefix, n.Hash, t.Provider, n.ProviderSig) &&
		verifySig(&n.reqOK, acceptPrefix, n.Hash, t.Requester, n.RequesterSig)
}
