package apiserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
)

// NodeService describes the local node.
type NodeService interface {
	Info(ctx context.Context) api.Node
}

// PeerService is the node's view of the network.
type PeerService interface {
	Peers(ctx context.Context) []api.Peer
	Connect(ctx context.Context, addr string) (peerID string, err error)
	Ping(ctx context.Context, peer string) (peerID string, rtt time.Duration, err error)
}

// RelayService relays envelopes signed by the CLI (actor.System implements
// it).
type RelayService interface {
	Relay(ctx context.Context, env *actor.Envelope) (*actor.Reply, error)
	RelayBroadcast(ctx context.Context, env *actor.Envelope, collect func(*actor.Reply)) error
}

func (s *Server) routesV1() {
	s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Metrics == nil {
			writeError(w, http.StatusNotFound, api.CodeNotFound, "metrics are off on this node (telemetry.metrics)")
			return
		}
		s.cfg.Metrics.ServeHTTP(w, r)
	})
	s.handle("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.Health{Status: "ok", Version: s.cfg.Version})
	})
	s.handle("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(api.OpenAPI)
	})
	s.handle("GET /api/v1/node", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Node == nil {
			unavailable(w, "node info")
			return
		}
		writeJSON(w, s.cfg.Node.Info(r.Context()))
	})
	s.handle("GET /api/v1/peers", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Peers == nil {
			unavailable(w, "peers")
			return
		}
		ps := s.cfg.Peers.Peers(r.Context())
		if ps == nil {
			ps = []api.Peer{}
		}
		writeJSON(w, ps)
	})
	s.handle("POST /api/v1/peers/connect", func(w http.ResponseWriter, r *http.Request) {
		var req api.ConnectRequest
		if !decode(w, r, &req) {
			return
		}
		if s.cfg.Peers == nil {
			unavailable(w, "peers")
			return
		}
		if req.Addr == "" {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, "addr is required (a full multiaddr with /p2p/<peer ID>)")
			return
		}
		id, err := s.cfg.Peers.Connect(r.Context(), req.Addr)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, api.ConnectResult{PeerID: id})
	})
	s.handle("POST /api/v1/peers/ping", func(w http.ResponseWriter, r *http.Request) {
		var req api.PingRequest
		if !decode(w, r, &req) {
			return
		}
		if s.cfg.Peers == nil {
			unavailable(w, "peers")
			return
		}
		id, rtt, err := s.cfg.Peers.Ping(r.Context(), req.Peer)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, api.PingResult{PeerID: id, RTTMS: float64(rtt.Microseconds()) / 1000})
	})
	s.handle("POST /api/v1/actor/send", func(w http.ResponseWriter, r *http.Request) { s.relay(w, r, false) })
	s.handle("POST /api/v1/actor/invoke", func(w http.ResponseWriter, r *http.Request) { s.relay(w, r, true) })
	s.handle("POST /api/v1/actor/broadcast", s.broadcast)
	s.routesResources()
	s.routesCap()
	s.routesDeployments()
	s.routesResults()
	s.routesTraces()
	s.routesPlan()
	s.routesExec()
	s.routesContracts()
	s.routesDashboard()
}

// envelope checks an ActorRequest and builds the envelope to relay.
func envelope(w http.ResponseWriter, req *api.ActorRequest, broadcast bool) (*actor.Envelope, bool) {
	switch {
	case req.Behavior == "":
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "behavior is required")
		return nil, false
	case len(req.Invocation) == 0:
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "invocation is required (the CLI signs it with the user key)")
		return nil, false
	case req.From == "":
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "from (the invocation issuer's DID) is required")
		return nil, false
	case broadcast && req.Topic == "":
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "topic is required")
		return nil, false
	case !broadcast && (req.To.Host == "" || req.To.DID == ""):
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "to.host and to.did are required")
		return nil, false
	}
	inbox := req.To.Inbox
	if inbox == "" {
		inbox = actor.RootInbox
	}
	env := &actor.Envelope{
		Behavior:   req.Behavior,
		Payload:    req.Payload,
		Invocation: req.Invocation,
		From:       actor.Handle{DID: identity.DID(req.From), Inbox: "api"},
	}
	if broadcast {
		env.Topic = req.Topic
	} else {
		env.To = actor.Handle{DID: identity.DID(req.To.DID), Host: req.To.Host, Inbox: inbox}
	}
	return env, true
}

func timeout(req *api.ActorRequest, def time.Duration) time.Duration {
	if req.TimeoutMS > 0 {
		return min(time.Duration(req.TimeoutMS)*time.Millisecond, 10*time.Minute)
	}
	return def
}

func (s *Server) relay(w http.ResponseWriter, r *http.Request, wantReply bool) {
	var req api.ActorRequest
	if !decode(w, r, &req) {
		return
	}
	if s.cfg.Actors == nil {
		unavailable(w, "the actor relay")
		return
	}
	env, ok := envelope(w, &req, false)
	if !ok {
		return
	}
	env.WantReply = wantReply
	ctx, cancel := context.WithTimeout(r.Context(), timeout(&req, 30*time.Second))
	defer cancel()
	reply, err := s.cfg.Actors.Relay(ctx, env)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !wantReply {
		writeJSON(w, struct{}{})
		return
	}
	writeJSON(w, actorReply(reply))
}

func (s *Server) broadcast(w http.ResponseWriter, r *http.Request) {
	var req api.ActorRequest
	if !decode(w, r, &req) {
		return
	}
	if s.cfg.Actors == nil {
		unavailable(w, "the actor relay")
		return
	}
	env, ok := envelope(w, &req, true)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout(&req, 5*time.Second))
	defer cancel()
	replies := make(chan api.ActorReply, 1024)
	published := time.Now()
	err := s.cfg.Actors.RelayBroadcast(ctx, env, func(rp *actor.Reply) {
		ar := actorReply(rp)
		ar.AfterMS = float64(time.Since(published).Microseconds()) / 1000
		select {
		case replies <- ar:
		default: // more than 1024 replies: the rest are counted by the runtime
		}
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	<-ctx.Done()
	res := api.BroadcastResult{Replies: []api.ActorReply{}}
	for {
		select {
		case rp := <-replies:
			res.Replies = append(res.Replies, rp)
			continue
		default:
		}
		break
	}
	writeJSON(w, res)
}

func actorReply(r *actor.Reply) api.ActorReply {
	out := api.ActorReply{From: api.Handle{DID: string(r.From.DID), Host: r.From.Host, Inbox: r.From.Inbox}, Payload: r.Payload}
	if r.Err != nil {
		out.Error = &api.ErrorBody{Code: string(r.Err.Code), Message: r.Err.Msg}
	}
	return out
}

// fail maps an error to its HTTP status and code: a capability refusal
// (*cap.DeniedError) is 403 "denied" with its rule, token and detail;
// actor errors keep their code; everything else is a bad request when it
// is the caller's input (BadRequest), else internal.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var de *cap.DeniedError
	if errors.As(err, &de) {
		writeError(w, http.StatusForbidden, api.CodeDenied, de.Reason())
		return
	}
	var ae *actor.Error
	if errors.As(err, &ae) {
		writeError(w, statusOf(ae.Code), string(ae.Code), ae.Msg)
		return
	}
	var amb *Ambiguous
	if errors.As(err, &amb) {
		writeAmbiguous(w, amb)
		return
	}
	var br *BadRequest
	if errors.As(err, &br) {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, br.Error())
		return
	}
	var nf *NotFound
	if errors.As(err, &nf) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, nf.Error())
		return
	}
	s.log.Warn("request failed", "err", err)
	writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
}

// BadRequest marks an error as the caller's fault (400).
type BadRequest struct{ Err error }

func (e *BadRequest) Error() string { return e.Err.Error() }
func (e *BadRequest) Unwrap() error { return e.Err }

// NotFound marks an error as a missing resource (404).
type NotFound struct{ Err error }

func (e *NotFound) Error() string { return e.Err.Error() }
func (e *NotFound) Unwrap() error { return e.Err }

func statusOf(c actor.Code) int {
	switch c {
	case actor.CodeDenied, actor.CodeHostMismatch:
		return http.StatusForbidden
	case actor.CodeUnknownBehavior, actor.CodeNoSuchActor:
		return http.StatusNotFound
	case actor.CodeBadEnvelope, actor.CodeExpired, actor.CodeReplay:
		return http.StatusBadRequest
	case actor.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case actor.CodeRateLimited:
		return http.StatusTooManyRequests
	case actor.CodeMailboxFull, actor.CodeShuttingDown:
		return http.StatusServiceUnavailable
	case actor.CodeTimeout:
		return http.StatusGatewayTimeout
	case actor.CodeUnreachable:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}
