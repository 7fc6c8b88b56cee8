package subnet

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/identity"
)

func mustKey(t testing.TB) *identity.Key {
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func peerOf(t testing.TB, k *identity.Key) string {
	p, err := k.DID().PeerID()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignedTable(t *testing.T) {
	orch, a, b := mustKey(t), mustKey(t), mustKey(t)
	pa, pb := peerOf(t, a), peerOf(t, b)
	tbl := Table{Deployment: "d1", Version: 2, Subnet: netip.MustParsePrefix("10.77.0.0/24"), Routes: []Route{
		{Allocation: "web", Addr: netip.MustParseAddr("10.77.0.3"), Peer: pb},
		{Allocation: "db", Addr: netip.MustParseAddr("10.77.0.2"), Peer: pa},
	}}
	s, err := tbl.Sign(orch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Open(orch.DID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Routes[0].Allocation != "db" || got.Version != 2 {
		t.Fatalf("opened %+v: routes not sorted, or version lost", got)
	}
	if p, ok := got.PeerOf(netip.MustParseAddr("10.77.0.3")); !ok || p != pb {
		t.Fatalf("PeerOf web = %s %v", p, ok)
	}
	cases := []struct {
		name string
		peer string
		src  string
		want bool
	}{
		{"its own address", pa, "10.77.0.2", true},
		{"another peer's address", pa, "10.77.0.3", false},
		{"an address nobody has", pa, "10.77.0.9", false},
		{"outside the subnet", pb, "192.168.1.1", false},
		{"an unknown peer", peerOf(t, orch), "10.77.0.2", false},
	}
	for _, tc := range cases {
		if got.Allows(tc.peer, netip.MustParseAddr(tc.src)) != tc.want {
			t.Errorf("Allows(%s, %s) != %v", tc.name, tc.src, tc.want)
		}
	}
	if n := got.Names(); n["web"].String() != "10.77.0.3" || len(n) != 2 {
		t.Fatalf("names %v", n)
	}

	// Refusals: another signer, a tampered body, a bad signature.
	if _, err := s.Open(a.DID()); !errors.Is(err, ErrBadTable) {
		t.Fatalf("opened with another orchestrator: %v", err)
	}
	tampered := s
	tampered.Body = []byte(strings.Replace(string(s.Body), "10.77.0.3", "10.77.0.4", 1))
	if _, err := tampered.Open(orch.DID()); !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("a tampered table: %v", err)
	}
}

func TestTableValidate(t *testing.T) {
	p := peerOf(t, mustKey(t))
	sub := netip.MustParsePrefix("10.77.0.0/24")
	route := func(name, a string) Route { return Route{Allocation: name, Addr: netip.MustParseAddr(a), Peer: p} }
	cases := []struct {
		name string
		t    Table
		err  string
	}{
		{"ok", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("a", "10.77.0.2")}}, ""},
		{"no deployment", Table{Subnet: sub}, "no deployment"},
		{"ipv6 subnet", Table{Deployment: "d1", Subnet: netip.MustParsePrefix("fd00::/64")}, "not an IPv4 network"},
		{"unmasked subnet", Table{Deployment: "d1", Subnet: netip.MustParsePrefix("10.77.0.5/24")}, "not an IPv4 network"},
		{"the gateway", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("a", "10.77.0.1")}}, "not a host address"},
		{"broadcast", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("a", "10.77.0.255")}}, "not a host address"},
		{"outside", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("a", "10.78.0.2")}}, "not a host address"},
		{"twice", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("a", "10.77.0.2"), route("b", "10.77.0.2")}}, "both a's and b's"},
		{"unsorted", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("b", "10.77.0.2"), route("a", "10.77.0.3")}}, "not sorted"},
		{"bad name", Table{Deployment: "d1", Subnet: sub, Routes: []Route{route("A_b", "10.77.0.2")}}, "not an allocation name"},
		{"the DNS address", Table{Deployment: "d1", Subnet: netip.MustParsePrefix("169.254.53.0/24"), Routes: []Route{route("a", "169.254.53.2")}}, "contains 169.254.53.53"},
		{"bad peer", Table{Deployment: "d1", Subnet: sub, Routes: []Route{{Allocation: "a", Addr: netip.MustParseAddr("10.77.0.2"), Peer: "nope"}}}, "peer ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func FuzzOpenTable(f *testing.F) {
	orch := mustKey(f)
	s, err := Table{Deployment: "d1", Subnet: netip.MustParsePrefix("10.77.0.0/24"), Routes: []Route{
		{Allocation: "a", Addr: netip.MustParseAddr("10.77.0.2"), Peer: peerOf(f, orch)},
	}}.Sign(orch)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.Body)
	f.Add([]byte(`{"deployment":"d1","subnet":"10.0.0.0/8","routes":null,"extra":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// Signed by the right key, any body must decode or be refused
		// without a panic; a table that opens is valid.
		st := SignedTable{Body: body, Signer: orch.DID(), Sig: orch.Sign(signed(body))}
		tbl, err := st.Open(orch.DID())
		if err == nil {
			if verr := tbl.Validate(); verr != nil {
				t.Fatalf("opened an invalid table: %v", verr)
			}
			if _, err := json.Marshal(tbl); err != nil {
				t.Fatal(err)
			}
		}
	})
}
