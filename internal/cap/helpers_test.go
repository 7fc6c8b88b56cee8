package cap

import (
	"testing"
	"time"

	did "github.com/MetaMask/go-did-it"

	"github.com/ucan-wg/go-ucan/pkg/command"
	"github.com/ucan-wg/go-ucan/pkg/policy"
	"github.com/ucan-wg/go-ucan/token/delegation"

	"github.com/dmsnet/dms/internal/identity"
)

// world is a cast for tests: alice is the trusted root user, bob and
// carol delegates, mallory untrusted, node the local node.
type world struct {
	alice, bob, carol, dave, mallory, node *identity.Key
	t0                                     time.Time // "now" of the tests
}

func newWorld(t testing.TB) *world {
	t.Helper()
	k := func() *identity.Key {
		key, err := identity.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	// Tokens get real future times (go-ucan refuses past ones when
	// building); checks run at t0, the wall time the world was made.
	return &world{alice: k(), bob: k(), carol: k(), dave: k(), mallory: k(), node: k(), t0: time.Now()}
}

func (w *world) trust(t testing.TB) Trust {
	tr, err := NewTrust(Anchor{Root: w.alice.DID(), Cmd: "/dms"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (w *world) verifier(t testing.TB, revs RevocationSet) *Verifier {
	return NewVerifier(Config{
		Trust:   w.trust(t),
		Revoked: revs,
		IsLocal: func(d identity.DID) bool { return d == w.node.DID() },
	})
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// grant is a root delegation from→to for cmd, valid one hour.
func (w *world) grant(t testing.TB, from, to *identity.Key, cmd string, mod ...func(*DelegationParams)) *Delegation {
	t.Helper()
	p := DelegationParams{Audience: to.DID(), Command: cmd, Expiry: w.t0.Add(time.Hour)}
	for _, m := range mod {
		m(&p)
	}
	return must[*Delegation](t)(Delegate(from, p))
}

// chain builds a chain alice → keys[0] → keys[1] … for cmd.
func (w *world) chain(t testing.TB, cmd string, keys ...*identity.Key) Chain {
	t.Helper()
	c := Chain{w.grant(t, w.alice, keys[0], cmd)}
	for i := 1; i < len(keys); i++ {
		c = must[Chain](t)(Redelegate(keys[i-1], c, DelegationParams{Audience: keys[i].DID(), Command: cmd}, w.t0))
	}
	return c
}

func (w *world) invoke(t testing.TB, by *identity.Key, cmd string, proofs Chain, mod ...func(*InvocationParams)) *Invocation {
	t.Helper()
	p := InvocationParams{Audience: w.node.DID(), Command: cmd, Proofs: proofs, Expiry: w.t0.Add(time.Minute)}
	for _, m := range mod {
		m(&p)
	}
	return must[*Invocation](t)(Invoke(by, p))
}

func sealedOf(c Chain) [][]byte {
	out := make([][]byte, len(c))
	for i, d := range c {
		out[i] = d.Sealed()
	}
	return out
}

// forged is a delegation claiming issuer from but signed by signer.
func (w *world) forged(t testing.TB, from, by, to *identity.Key, cmd string) *Delegation {
	t.Helper()
	iss := must[did.DID](t)(parseDID(from.DID()))
	aud := must[did.DID](t)(parseDID(to.DID()))
	tok, err := delegation.Root(iss, aud, command.Command(cmd), policy.Policy{}, delegation.WithExpiration(w.t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := signer(by)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := tok.ToDagCbor(priv)
	if err != nil {
		t.Fatal(err)
	}
	// A Delegation value that was never verified, as an attacker would
	// send it.
	return &Delegation{tok: tok, id: tokenID(sealed), sealed: sealed,
		iss: didOf(tok.Issuer()), aud: didOf(tok.Audience()), sub: didOf(tok.Subject())}
}
