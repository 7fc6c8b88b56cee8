package capstore

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/cap"
)

// TestListing: the API's view of the store is the records' own JSON, field
// for field, and an empty store lists empty arrays, not null.
func TestListing(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	now := time.Now()
	d, err := cap.Delegate(alice, cap.DelegationParams{Audience: bob.DID(), Command: "/dms/node", NotBefore: now.Add(time.Minute), Expiry: now.Add(time.Hour), Policy: `[["==", ".a", 1]]`})
	if err != nil {
		t.Fatal(err)
	}
	r, err := cap.Revoke(alice, cap.Chain{d}, d.CID(), now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fill func(t *testing.T, cs *Store)
		want string // the JSON of the listing, "" for the records' own
	}{
		{"empty", func(*testing.T, *Store) {}, `{"anchors":[],"tokens":[],"revocations":[]}`},
		{"one of each", func(t *testing.T, cs *Store) {
			if err := cs.AddAnchor(cap.Anchor{Root: alice.DID(), Cmd: "/dms"}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.AddChain(cap.Chain{d}, SourceIssued, now); err != nil {
				t.Fatal(err)
			}
			if err := cs.Revoke(r, cap.Chain{d}); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, cs := open(t, filepath.Join(t.TempDir(), "dms.db"))
			defer db.Close()
			tt.fill(t, cs)
			l, err := cs.Listing()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(l)
			want := tt.want
			if want == "" {
				as, _ := cs.Anchors()
				ts, _ := cs.Tokens()
				rs, _ := cs.Revocations()
				records, _ := json.Marshal(struct {
					Anchors     []cap.Anchor     `json:"anchors"`
					Tokens      []Token          `json:"tokens"`
					Revocations []cap.Revocation `json:"revocations"`
				}{as, ts, rs})
				want = string(records)
			}
			if string(got) != want {
				t.Fatalf("Listing = %s\nwant %s", got, want)
			}
		})
	}
}
