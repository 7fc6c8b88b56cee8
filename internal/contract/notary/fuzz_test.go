package notary

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
)

// FuzzHandleNote feeds the requester notes made of arbitrary bytes (what
// a provider node can send): HandleNote never panics, refuses with one of
// the note codes, and countersigns only a note its provider signed that
// follows the chain.
func FuzzHandleNote(f *testing.F) {
	w := newWorld(f)
	f.Cleanup(w.close)
	c := w.place(w.terms("dep1", 0))
	w.prov.close() // the notes here are the fuzzer's
	pk := w.prov.key
	n1, err := c.Issue(pk, nil, time.Now(), contract.Usage{CPUMicros: 5}, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(n1.Hash, []byte(n1.Body), n1.ProviderSig, true)
	f.Add(n1.Hash, []byte(n1.Body), n1.ProviderSig, false)
	f.Add("", []byte("{}"), []byte{}, true)
	f.Add(n1.Hash, []byte(`{"contract":"`+c.ID+`","seq":1,"time":"2026-01-01T00:00:00Z","usage":{"cpu_us":1},"amount":1}`), n1.ProviderSig, true)
	f.Fuzz(func(t *testing.T, hash string, body, sig []byte, fromProvider bool) {
		from := pk.DID()
		if !fromProvider {
			from = w.req.key.DID()
		}
		in := contract.SignedNote{Hash: hash, Body: body, ProviderSig: sig}
		out, err := w.req.n.HandleNote(context.Background(), from, in)
		if err != nil {
			var ae *actor.Error
			if !errors.As(err, &ae) || (ae.Code != deployproto.CodeNoteRefused && ae.Code != deployproto.CodeBudget) {
				t.Fatalf("HandleNote = %v, want a refusal with a note code", err)
			}
			return
		}
		if !fromProvider || out.Hash != hash || !out.Accepted(c) {
			t.Fatalf("countersigned a note from %s that is not its provider's valid note", from.Short())
		}
	})
}
