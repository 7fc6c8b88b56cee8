package cap

import (
	"testing"
	"time"
)

// A delegation Delegate returns without decoding must equal the decoded
// wire form: same CID, fields and times.
func TestDelegateEqualsWireForm(t *testing.T) {
	w := newWorld(t)
	tests := []DelegationParams{
		{Audience: w.bob.DID(), Command: "/dms", Expiry: time.Now().Add(90*time.Minute + 123*time.Millisecond)},
		{Audience: w.bob.DID(), Command: "/dms/node", NotBefore: time.Now().Add(time.Hour + 7*time.Millisecond), Policy: `[["==", ".executor", "docker"]]`, Meta: map[string]string{"k": "v"}},
		{Audience: w.bob.DID(), Subject: w.carol.DID(), Command: "/public"},
	}
	for _, p := range tests {
		d, err := Delegate(w.alice, p)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := DecodeDelegation(d.Sealed())
		if err != nil {
			t.Fatal(err)
		}
		if d.CID() != wire.CID() || d.Issuer() != wire.Issuer() || d.Audience() != wire.Audience() || d.Subject() != wire.Subject() ||
			d.Command() != wire.Command() || d.Policy() != wire.Policy() || !d.Expiry().Equal(wire.Expiry()) || !d.NotBefore().Equal(wire.NotBefore()) {
			t.Fatalf("built %s %s %s %v %v, wire %s %s %s %v %v", d.CID(), d.Command(), d.Policy(), d.Expiry(), d.NotBefore(), wire.CID(), wire.Command(), wire.Policy(), wire.Expiry(), wire.NotBefore())
		}
		if v, _ := d.Meta("k"); v != func() string { v, _ := wire.Meta("k"); return v }() {
			t.Fatal("meta differs")
		}
	}
}
