package contract

import (
	"crypto/ed25519"
	"fmt"
	"runtime"
	"sync"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Chain is a contract with its notes in order: what `dms contract show -o
// json` prints and `dms contract verify --file` reads.
type Chain struct {
	Contract *Contract    `json:"contract"`
	Notes    []SignedNote `json:"notes"`
}

// Summary is what VerifyChain found.
type Summary struct {
	Notes    int         `json:"notes"`
	Accepted int         `json:"accepted"` // countersigned
	Usage    Usage       `json:"usage"`    // of the last note
	Amount   match.Money `json:"amount"`   // of the last note
	// Owed is the amount of the last countersigned note: what the
	// requester has agreed to pay.
	Owed  match.Money `json:"owed"`
	Final bool        `json:"final"`
	// Signatures is how many signatures were verified one by one, and
	// Checked says in words what was verified.
	Signatures int    `json:"signatures"`
	Checked    string `json:"checked"`
}

// VerifyChain checks a whole chain offline: the contract and both its
// signatures, every note as CheckNote would (hash, seq, prev, counters,
// amount), countersignatures where present (a countersigned note after
// one that is not is refused).
//
// It verifies four signatures, not two per note. Why that suffices: each
// note's body holds the hash of the note before it, so the last note's
// hash commits to every body of the chain (SHA-256 is collision
// resistant). The provider's signature of the last note therefore
// authenticates every note's usage and amount as the provider's, and the
// requester's signature of the last countersigned note is its acceptance
// of that note, whose amount is cumulative: it is what the requester owes,
// and a requester countersigns a note only after the one before it (a
// countersignature is refused after a note without one). The earlier
// notes' own signatures add no fact to that; they are checked for length
// only. VerifyChainAll verifies every one of them too (about 100 µs per
// note on one core), for an auditor who wants to see each.
func VerifyChain(ch *Chain) (Summary, error) { return verifyChain(ch, false) }

// VerifyChainAll is VerifyChain that also verifies every note's provider
// signature and countersignature one by one, in parallel on the
// machine's cores.
func VerifyChainAll(ch *Chain) (Summary, error) { return verifyChain(ch, true) }

func verifyChain(ch *Chain, all bool) (Summary, error) {
	var s Summary
	if ch == nil || ch.Contract == nil {
		return s, refuse(ErrMalformed, "chain without a contract")
	}
	c := ch.Contract
	t, provSigned, err := c.check()
	if err != nil {
		return s, err
	}
	if !provSigned {
		return s, refuse(ErrSignature, "contract %s is not signed by its provider", c.ID)
	}
	s.Signatures = 2
	notes := make([]*Note, len(ch.Notes))
	lastAccepted := -1
	for i := range ch.Notes {
		sn := &ch.Notes[i]
		n, err := sn.view()
		if err != nil {
			return s, at(i, err)
		}
		if n.Contract != c.ID {
			return s, at(i, refuse(ErrUnknown, "note %d is of contract %s, not %s", n.Seq, n.Contract, c.ID))
		}
		var last *Note
		lh := ""
		if i > 0 {
			last, lh = notes[i-1], ch.Notes[i-1].Hash
		}
		if err := follow(t, last, lh, n, sn.Hash); err != nil {
			return s, at(i, err)
		}
		if len(sn.ProviderSig) != ed25519.SignatureSize {
			return s, at(i, refuse(ErrSignature, "note %d: provider signature is %d bytes, want %d", n.Seq, len(sn.ProviderSig), ed25519.SignatureSize))
		}
		switch {
		case len(sn.RequesterSig) == 0:
		case len(sn.RequesterSig) != ed25519.SignatureSize:
			return s, at(i, refuse(ErrSignature, "note %d: countersignature is %d bytes, want %d", n.Seq, len(sn.RequesterSig), ed25519.SignatureSize))
		case lastAccepted != i-1:
			return s, at(i, refuse(ErrOutOfOrder, "note %d is countersigned, note %d before it is not", n.Seq, lastAccepted+2))
		default:
			lastAccepted = i
		}
		notes[i] = n
	}
	s.Notes, s.Accepted = len(notes), lastAccepted+1
	if len(notes) == 0 {
		s.Checked = "the contract and both its signatures; no notes"
		return s, nil
	}
	last := notes[len(notes)-1]
	s.Usage, s.Amount, s.Final = last.Usage, last.Amount, last.Final
	if lastAccepted >= 0 {
		s.Owed = notes[lastAccepted].Amount
	}
	if all {
		k, err := verifyAll(t.Provider, t.Requester, ch.Notes, notes)
		s.Signatures += k
		if err != nil {
			return s, err
		}
		s.Checked = fmt.Sprintf("the contract and both its signatures; the hash chain, counters and amounts of %d notes; every note's signatures (%d)", len(notes), k)
		return s, nil
	}
	ln := &ch.Notes[len(notes)-1]
	if !verifySig(&ln.provOK, notePrefix, ln.Hash, t.Provider, ln.ProviderSig) {
		return s, at(len(notes)-1, refuse(ErrSignature, "note %d is not signed by the provider %s", last.Seq, t.Provider.Short()))
	}
	s.Signatures++
	s.Checked = fmt.Sprintf("the contract and both its signatures; the hash chain, counters and amounts of %d notes; the provider's signature of the last note %d, which covers every earlier note through the chain", len(notes), last.Seq)
	if lastAccepted >= 0 {
		an := &ch.Notes[lastAccepted]
		if !verifySig(&an.reqOK, acceptPrefix, an.Hash, t.Requester, an.RequesterSig) {
			return s, at(lastAccepted, refuse(ErrSignature, "note %d: the countersignature is not the requester %s's", notes[lastAccepted].Seq, t.Requester.Short()))
		}
		s.Signatures++
		s.Checked += fmt.Sprintf("; the requester's countersignature of note %d, the last countersigned", notes[lastAccepted].Seq)
	}
	return s, nil
}

// at says which note of a chain a refusal is about.
func at(i int, err error) error {
	if r, ok := err.(*RefusalError); ok {
		return &RefusalError{Err: r.Err, Detail: fmt.Sprintf("chain note #%d: %s", i+1, r.Detail)}
	}
	return err
}

// verifyAll verifies every note's signatures on up to GOMAXPROCS
// goroutines; it returns how many it verified and the first refusal in
// chain order.
func verifyAll(provider, requester identity.DID, sns []SignedNote, notes []*Note) (int, error) {
	workers := min(runtime.GOMAXPROCS(0), len(sns))
	errs := make([]error, len(sns))
	counts := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(sns); i += workers {
				sn := &sns[i]
				if !verifySig(&sn.provOK, notePrefix, sn.Hash, provider, sn.ProviderSig) {
					errs[i] = at(i, refuse(ErrSignature, "note %d is not signed by the provider %s", notes[i].Seq, provider.Short()))
					continue
				}
				counts[w]++
				if len(sn.RequesterSig) > 0 {
					if !verifySig(&sn.reqOK, acceptPrefix, sn.Hash, requester, sn.RequesterSig) {
						errs[i] = at(i, refuse(ErrSignature, "note %d: the countersignature is not the requester %s's", notes[i].Seq, requester.Short()))
						continue
					}
					counts[w]++
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, k := range counts {
		n += k
	}
	for _, err := range errs {
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
