package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/dmsnet/dms/api"
)

// ContractService shows the node's contracts (docs/contracts.md): those it
// signed as requester for the deployments it orchestrates and as provider
// for the work it runs, their signed chains of notes, and its ledger.
// Unknown IDs are *NotFound, a prefix matching several contracts
// *Ambiguous.
type ContractService interface {
	// Contracts lists the contracts of a deployment ("": all), newest
	// first.
	Contracts(ctx context.Context, deployment string) ([]api.Contract, error)
	// Contract returns one contract, by ID or unique prefix, with its
	// chain.
	Contract(ctx context.Context, id string) (*api.ContractDetail, error)
	// Usage sums what a deployment's contracts metered and cost.
	Usage(ctx context.Context, deployment string) (*api.DeploymentUsage, error)
	// Ledger is this node's account.
	Ledger(ctx context.Context) (*api.LedgerBalance, error)
}

func (s *Server) routesContracts() {
	ready := func(w http.ResponseWriter) bool {
		if s.cfg.Contracts == nil {
			unavailable(w, "contracts")
			return false
		}
		return true
	}
	s.handle("GET /api/v1/contracts", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		dep := r.URL.Query().Get("deployment")
		if dep != "" {
			// A deployment this node orchestrates may be named by a
			// prefix; a provider knows the deployments of its contracts
			// by their full IDs only.
			if res, ok := s.cfg.Deployments.(Resolver); ok {
				id, err := res.Resolve(r.Context(), dep)
				var nf *NotFound
				switch {
				case err == nil:
					dep = id
				case !errors.As(err, &nf):
					s.fail(w, err)
					return
				}
			}
		}
		cs, err := s.cfg.Contracts.Contracts(r.Context(), dep)
		if err != nil {
			s.fail(w, err)
			return
		}
		if cs == nil {
			cs = []api.Contract{}
		}
		writeJSON(w, cs)
	})
	s.handle("GET /api/v1/contracts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		d, err := s.cfg.Contracts.Contract(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, err)
			return
		}
		if d.Chain.Notes == nil {
			d.Chain.Notes = []api.SignedNote{}
		}
		// Compact and unescaped: an indenting or HTML-escaping encoder
		// would change the signed bodies' bytes, and with them their
		// hashes.
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(d)
	})
	s.handle("GET "+deploymentPath+"/usage", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		id := r.PathValue("id")
		if s.cfg.Deployments != nil {
			// An unknown deployment is a 404, not an empty usage.
			if _, err := s.cfg.Deployments.Get(r.Context(), id, 0, 0); err != nil {
				s.fail(w, err)
				return
			}
		}
		u, err := s.cfg.Contracts.Usage(r.Context(), id)
		if err != nil {
			s.fail(w, err)
			return
		}
		if u.Contracts == nil {
			u.Contracts = []api.ContractUsed{}
		}
		writeJSON(w, u)
	})
	s.handle("GET /api/v1/ledger", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		b, err := s.cfg.Contracts.Ledger(r.Context())
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, b)
	})
}

// ledgerOf is this node's account for the resources reply, nil when the
// node keeps no contracts or its ledger cannot be read (logged: the
// resources answer without it).
func (s *Server) ledgerOf(ctx context.Context) *api.LedgerBalance {
	if s.cfg.Contracts == nil {
		return nil
	}
	b, err := s.cfg.Contracts.Ledger(ctx)
	if err != nil {
		s.log.Warn("ledger balance for the resources", "err", err)
		return nil
	}
	return b
}
