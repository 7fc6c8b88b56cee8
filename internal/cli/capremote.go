package cli

import (
	"context"
	"os"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
)

// remoteCapState is capState through a running node's REST API: the node
// holds the store while it runs, and applies changes to its verifier at
// once (an anchor added here authorizes the next invocation).
type remoteCapState struct {
	a *app
	c *api.Client
}

// runningNode returns a client for the home's node when one is running.
func (a *app) runningNode() (*api.Client, bool) {
	if a.apiAddr == "" {
		if _, err := os.Stat(a.path(apiAddrFile)); err != nil {
			return nil, false
		}
	}
	c, err := a.client()
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(a.ctx, 2*time.Second)
	defer cancel()
	if _, err := c.Health(ctx); err != nil {
		return nil, false
	}
	return c, true
}

func (s *remoteCapState) Anchor(an cap.Anchor, remove bool) error {
	return s.c.Anchor(s.a.ctx, api.AnchorRequest{Root: string(an.Root), Cmd: an.Cmd, Remove: remove})
}

func (s *remoteCapState) Revoke(r cap.Revocation, chain cap.Chain) error {
	text, err := chain.Encode()
	if err != nil {
		return err
	}
	return s.c.Revoke(s.a.ctx, api.RevokeRequest{Revocation: api.Revocation{CID: r.CID, Issuer: string(r.Issuer), Time: r.Time, Signature: r.Signature}, Chain: text})
}

func (s *remoteCapState) Import(chain cap.Chain, source string) (api.CapToken, error) {
	text, err := chain.Encode()
	if err != nil {
		return api.CapToken{}, err
	}
	t, err := s.c.ImportToken(s.a.ctx, api.ImportRequest{Chain: text, Source: source})
	if err != nil {
		return api.CapToken{}, err
	}
	return *t, nil
}

func (s *remoteCapState) List() (api.CapListing, error) {
	l, err := s.c.Capabilities(s.a.ctx)
	if err != nil {
		return api.CapListing{}, err
	}
	return *l, nil
}

func (s *remoteCapState) Verify(chain cap.Chain, cmd string, args map[string]any) error {
	text, err := chain.Encode()
	if err != nil {
		return err
	}
	return s.c.Verify(s.a.ctx, api.VerifyRequest{Chain: text, Cmd: cmd, Args: args})
}

func (s *remoteCapState) Close() error { return nil }
