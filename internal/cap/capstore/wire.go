package capstore

import (
	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
)

// The store's state as package api shows it: GET /api/v1/cap answers
// with Listing, and `dms cap list -o json` prints it, from the node or
// from the home's store alike.

// Listing returns every anchor, token and revocation. Its slices are
// empty, not nil, when the store holds none.
func (s *Store) Listing() (api.CapListing, error) {
	l := api.CapListing{Anchors: []api.Anchor{}, Tokens: []api.CapToken{}, Revocations: []api.Revocation{}}
	as, err := s.Anchors()
	if err != nil {
		return l, err
	}
	for _, a := range as {
		l.Anchors = append(l.Anchors, api.Anchor{Root: string(a.Root), Cmd: a.Cmd})
	}
	ts, err := s.Tokens()
	if err != nil {
		return l, err
	}
	for _, t := range ts {
		l.Tokens = append(l.Tokens, t.API())
	}
	rs, err := s.Revocations()
	if err != nil {
		return l, err
	}
	for _, r := range rs {
		l.Revocations = append(l.Revocations, APIRevocation(r))
	}
	return l, nil
}

// API returns t as the API shows it.
func (t Token) API() api.CapToken {
	return api.CapToken{
		CID: t.CID, Issuer: string(t.Issuer), Audience: string(t.Audience), Subject: string(t.Subject),
		Cmd: t.Cmd, Policy: t.Policy, NotBefore: t.NotBefore, Expiry: t.Expiry,
		Source: t.Source, Chain: t.Chain, Added: t.Added, Revoked: t.Revoked,
	}
}

// APIRevocation returns r as the API shows it.
func APIRevocation(r cap.Revocation) api.Revocation {
	return api.Revocation{CID: r.CID, Issuer: string(r.Issuer), Time: r.Time, Signature: r.Signature}
}
