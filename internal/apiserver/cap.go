package apiserver

import (
	"context"
	"net/http"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/identity"
)

// CapService is the node's capability state while it runs (it holds the
// store): `dms cap anchor|revoke|import|list|verify` use it through the API.
type CapService interface {
	Anchor(ctx context.Context, a cap.Anchor, remove bool) error
	Revoke(ctx context.Context, r cap.Revocation, chain cap.Chain) error
	Import(ctx context.Context, chain cap.Chain, source string) (capstore.Token, error)
	List(ctx context.Context) (api.CapListing, error)
	Verify(ctx context.Context, chain cap.Chain, cmd string, args map[string]any) error
}

func (s *Server) routesCap() {
	s.handle("GET /api/v1/cap", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Caps == nil {
			unavailable(w, "capabilities")
			return
		}
		l, err := s.cfg.Caps.List(r.Context())
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, l)
	})
	s.handle("POST /api/v1/cap/anchors", func(w http.ResponseWriter, r *http.Request) {
		var req api.AnchorRequest
		if !decode(w, r, &req) || !s.capsReady(w) {
			return
		}
		if err := s.cfg.Caps.Anchor(r.Context(), cap.Anchor{Root: identity.DID(req.Root), Cmd: req.Cmd}, req.Remove); err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, struct{}{})
	})
	s.handle("POST /api/v1/cap/revocations", func(w http.ResponseWriter, r *http.Request) {
		var req api.RevokeRequest
		if !decode(w, r, &req) || !s.capsReady(w) {
			return
		}
		chain, ok := s.chain(w, req.Chain)
		if !ok {
			return
		}
		rev := cap.Revocation{CID: req.Revocation.CID, Issuer: identity.DID(req.Revocation.Issuer), Time: req.Revocation.Time, Signature: req.Revocation.Signature}
		if err := s.cfg.Caps.Revoke(r.Context(), rev, chain); err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, struct{}{})
	})
	s.handle("POST /api/v1/cap/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req api.ImportRequest
		if !decode(w, r, &req) || !s.capsReady(w) {
			return
		}
		chain, ok := s.chain(w, req.Chain)
		if !ok {
			return
		}
		tok, err := s.cfg.Caps.Import(r.Context(), chain, req.Source)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, tok.API())
	})
	s.handle("POST /api/v1/cap/verify", func(w http.ResponseWriter, r *http.Request) {
		var req api.VerifyRequest
		if !decode(w, r, &req) || !s.capsReady(w) {
			return
		}
		chain, ok := s.chain(w, req.Chain)
		if !ok {
			return
		}
		if err := s.cfg.Caps.Verify(r.Context(), chain, req.Cmd, req.Args); err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, struct{}{})
	})
}

func (s *Server) capsReady(w http.ResponseWriter) bool {
	if s.cfg.Caps == nil {
		unavailable(w, "capabilities")
		return false
	}
	return true
}

// chain decodes a token file's text, answering 400 when it is not one.
func (s *Server) chain(w http.ResponseWriter, text string) (cap.Chain, bool) {
	c, err := cap.DecodeChain([]byte(text))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "chain: "+err.Error())
		return nil, false
	}
	return c, true
}
