package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// chainOf is p's contract with n notes, the first accepted countersigned.
func chainOf(tb testing.TB, p party, n, accepted int, final bool) *Chain {
	tb.Helper()
	ch := &Chain{Contract: p.c}
	for i, sn := range issueN(tb, p, n, final) {
		if i < accepted {
			sn.Countersign(p.req)
		}
		ch.Notes = append(ch.Notes, *sn)
	}
	return wire(tb, ch) // as `dms contract verify --file` reads it
}

func TestVerifyChain(t *testing.T) {
	p := newParty(t)
	mallory := testKey(t, 9)
	cases := []struct {
		name    string
		ch      func() *Chain
		want    error
		wantAll error // when it differs from want
		sum     Summary
	}{
		{"no notes", func() *Chain { return chainOf(t, p, 0, 0, false) }, nil, nil, Summary{}},
		{"all accepted, final", func() *Chain { return chainOf(t, p, 5, 5, true) }, nil, nil,
			Summary{Notes: 5, Accepted: 5, Usage: usageAt(5), Final: true}},
		{"last two not accepted", func() *Chain { return chainOf(t, p, 5, 3, false) }, nil, nil,
			Summary{Notes: 5, Accepted: 3, Usage: usageAt(5)}},
		{"none accepted", func() *Chain { return chainOf(t, p, 2, 0, false) }, nil, nil,
			Summary{Notes: 2, Usage: usageAt(2)}},
		{"nil chain", func() *Chain { return nil }, ErrMalformed, nil, Summary{}},
		{"no contract", func() *Chain { return &Chain{} }, ErrMalformed, nil, Summary{}},
		{"contract not provider signed", func() *Chain {
			ch := chainOf(t, p, 1, 1, false)
			ch.Contract.ProviderSig = nil
			return ch
		}, ErrSignature, nil, Summary{}},
		{"contract requester sig by another key", func() *Chain {
			ch := chainOf(t, p, 1, 1, false)
			ch.Contract.RequesterSig = mallory.Sign([]byte(contractPrefix + ch.Contract.ID))
			return ch
		}, ErrSignature, nil, Summary{}},
		{"middle body changed", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[1].Body = bytes.Replace(ch.Notes[1].Body, []byte(`"seq":2`), []byte(`"seq":2 `), 1)
			return ch
		}, ErrMalformed, nil, Summary{}},
		{"middle note replaced, rehashed and re-signed by mallory", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[1] = *reissue(t, wire(t, &ch.Notes[1]).opened(t), mallory, func(n *Note) {})
			return ch
		}, ErrOutOfOrder, nil, Summary{}}, // the next note's prev breaks
		{"notes swapped", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[0], ch.Notes[1] = ch.Notes[1], ch.Notes[0]
			return ch
		}, ErrOutOfOrder, nil, Summary{}},
		{"note dropped", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes = append(ch.Notes[:1], ch.Notes[2])
			return ch
		}, ErrOutOfOrder, nil, Summary{}},
		{"note duplicated", func() *Chain {
			ch := chainOf(t, p, 2, 2, false)
			ch.Notes = append(ch.Notes, ch.Notes[1])
			return ch
		}, ErrReplay, nil, Summary{}},
		{"note of another contract", func() *Chain {
			ch := chainOf(t, p, 2, 2, false)
			ch.Notes[1] = chainOf(t, newPartyWith(t, 1, 2), 2, 2, false).Notes[1]
			return ch
		}, ErrUnknown, nil, Summary{}},
		{"countersigned after a gap", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[1].RequesterSig = nil
			return ch
		}, ErrOutOfOrder, nil, Summary{}},
		{"last note's provider sig forged", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[2].ProviderSig = mallory.Sign([]byte(notePrefix + ch.Notes[2].Hash))
			return ch
		}, ErrSignature, nil, Summary{}},
		{"last countersignature forged", func() *Chain {
			ch := chainOf(t, p, 3, 2, false)
			ch.Notes[1].RequesterSig = mallory.Sign([]byte(acceptPrefix + ch.Notes[1].Hash))
			return ch
		}, ErrSignature, nil, Summary{}},
		{"earlier provider sig garbage: covered by the chain, found by All", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[0].ProviderSig = mallory.Sign([]byte(notePrefix + ch.Notes[0].Hash))
			return ch
		}, nil, ErrSignature, Summary{Notes: 3, Accepted: 3, Usage: usageAt(3)}},
		{"earlier countersig garbage: found by All", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[1].RequesterSig = mallory.Sign([]byte(acceptPrefix + ch.Notes[1].Hash))
			return ch
		}, nil, ErrSignature, Summary{Notes: 3, Accepted: 3, Usage: usageAt(3)}},
		{"short provider sig", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[0].ProviderSig = ch.Notes[0].ProviderSig[:10]
			return ch
		}, ErrSignature, nil, Summary{}},
		{"short countersig", func() *Chain {
			ch := chainOf(t, p, 3, 3, false)
			ch.Notes[0].RequesterSig = ch.Notes[0].RequesterSig[:10]
			return ch
		}, ErrSignature, nil, Summary{}},
		{"after final", func() *Chain {
			ch := chainOf(t, p, 2, 2, true)
			extra := reissue(t, wire(t, &ch.Notes[1]).opened(t), p.prov, func(n *Note) {
				n.Seq, n.Prev, n.Final = 3, ch.Notes[1].Hash, false
			})
			ch.Notes = append(ch.Notes, *extra)
			return ch
		}, ErrClosed, nil, Summary{}},
		{"amount inflated and re-signed by the provider", func() *Chain {
			ch := chainOf(t, p, 1, 0, false)
			ch.Notes[0] = *reissue(t, wire(t, &ch.Notes[0]).opened(t), p.prov, func(n *Note) { n.Amount += 1000 })
			return ch
		}, ErrAmount, nil, Summary{}},
	}
	for _, tc := range cases {
		for _, all := range []bool{false, true} {
			name := tc.name
			if all {
				name += "/all"
			}
			t.Run(name, func(t *testing.T) {
				ch := tc.ch()
				verify, want := VerifyChain, tc.want
				if all {
					verify = VerifyChainAll
					if tc.wantAll != nil {
						want = tc.wantAll
					}
				}
				s, err := verify(ch)
				wantRefusal(t, err, want)
				if want != nil {
					return
				}
				sum := tc.sum
				if sum.Notes > 0 {
					sum.Amount = p.c.Terms().Amount(sum.Usage)
					if sum.Accepted > 0 {
						sum.Owed = p.c.Terms().Amount(usageAt(uint64(sum.Accepted)))
					}
				}
				if s.Checked == "" || s.Signatures < 2 {
					t.Fatalf("summary says nothing of what was verified: %+v", s)
				}
				wantSigs := 2
				if all {
					wantSigs += sum.Notes + sum.Accepted
				} else if sum.Notes > 0 {
					wantSigs++
					if sum.Accepted > 0 {
						wantSigs++
					}
				}
				if s.Signatures != wantSigs {
					t.Fatalf("verified %d signatures, want %d (%s)", s.Signatures, wantSigs, s.Checked)
				}
				s.Signatures, s.Checked = 0, ""
				if s != sum {
					t.Fatalf("summary %+v\nwant    %+v", s, sum)
				}
			})
		}
	}
}

// opened opens n for tests.
func (n *SignedNote) opened(tb testing.TB) *SignedNote {
	tb.Helper()
	if err := n.Open(); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestVerifyChainDoesNotTrustMemos(t *testing.T) {
	// A chain built in memory carries memos; changing the signed bytes
	// afterwards must not pass.
	p := newParty(t)
	ch := &Chain{Contract: p.c}
	for _, sn := range issueN(t, p, 2, false) {
		sn.Countersign(p.req)
		ch.Notes = append(ch.Notes, *sn)
	}
	if _, err := VerifyChain(ch); err != nil {
		t.Fatal(err)
	}
	ch.Notes[1].ProviderSig = append([]byte{}, ch.Notes[1].ProviderSig...)
	ch.Notes[1].ProviderSig[5] ^= 1
	if _, err := VerifyChain(ch); !errors.Is(err, ErrSignature) {
		t.Fatalf("flipped bit in the last note's signature: %v", err)
	}
	ch.Notes[1].ProviderSig[5] ^= 1
	ch.Contract.RequesterSig = append([]byte{}, ch.Contract.RequesterSig...)
	ch.Contract.RequesterSig[0] ^= 1
	if _, err := VerifyChain(ch); !errors.Is(err, ErrSignature) {
		t.Fatalf("flipped bit in the contract's signature: %v", err)
	}
}

func TestChainJSON(t *testing.T) {
	p := newParty(t)
	ch := chainOf(t, p, 2, 1, false)
	b, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"contract"`, `"notes"`, `"requester_sig"`, `"provider_sig"`, `"hash"`, `"body"`} {
		if !strings.Contains(string(b), k) {
			t.Fatalf("chain JSON lacks %s: %s", k, b)
		}
	}
}
