package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
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
	return s.c.Do(s.a.ctx, http.MethodPost, "/api/v1/cap/anchors", api.AnchorRequest{Root: string(an.Root), Cmd: an.Cmd, Remove: remove}, nil)
}

func (s *remoteCapState) Revoke(r cap.Revocation, chain cap.Chain) error {
	rev, err := json.Marshal(r)
	if err != nil {
		return err
	}
	text, err := chain.Encode()
	if err != nil {
		return err
	}
	return s.c.Do(s.a.ctx, http.MethodPost, "/api/v1/cap/revocations", api.RevokeRequest{Revocation: rev, Chain: text}, nil)
}

func (s *remoteCapState) Import(chain cap.Chain, source string) (capstore.Token, error) {
	var tok capstore.Token
	text, err := chain.Encode()
	if err != nil {
		return tok, err
	}
	return tok, s.c.Do(s.a.ctx, http.MethodPost, "/api/v1/cap/tokens", api.ImportRequest{Chain: text, Source: source}, &tok)
}

func (s *remoteCapState) List() (capListing, error) {
	var l capListing
	return l, s.c.Do(s.a.ctx, http.MethodGet, "/api/v1/cap", nil, &l)
}

func (s *remoteCapState) Verify(chain cap.Chain, cmd string, args map[string]any) error {
	text, err := chain.Encode()
	if err != nil {
		return err
	}
	return s.c.Do(s.a.ctx, http.MethodPost, "/api/v1/cap/verify", api.VerifyRequest{Chain: text, Cmd: cmd, Args: args}, nil)
}

func (s *remoteCapState) Close() error { return nil }
