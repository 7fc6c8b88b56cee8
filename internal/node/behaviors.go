package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/p2p"
)

// addBehaviors registers the root actor's behaviors.
func (n *Node) addBehaviors() error {
	n.root.AddBehavior(api.BehaviorHello, func(ctx context.Context, m *actor.Message) (any, error) {
		return api.Hello{Hello: string(m.Issuer), PeerID: n.host.ID(), DID: string(n.cfg.Key.DID()), Version: n.cfg.Version}, nil
	})
	n.root.AddBehavior(api.BehaviorStatus, func(ctx context.Context, m *actor.Message) (any, error) {
		return n.status(), nil
	})
	n.root.AddBehavior(api.BehaviorPeersList, func(ctx context.Context, m *actor.Message) (any, error) {
		return peerService{n}.Peers(ctx), nil
	})
	n.root.AddBehavior(api.BehaviorPeersSelf, func(ctx context.Context, m *actor.Message) (any, error) {
		return nodeInfo{n}.Info(ctx), nil
	})
	n.root.AddBehavior(api.BehaviorPeersConnect, func(ctx context.Context, m *actor.Message) (any, error) {
		var req api.ConnectRequest
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		id, err := n.host.Connect(ctx, req.Addr)
		if err != nil {
			return nil, err
		}
		return api.ConnectResult{PeerID: id}, nil
	})
	n.root.AddBehavior(api.BehaviorPeersPing, func(ctx context.Context, m *actor.Message) (any, error) {
		var req api.PingRequest
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		id, rtt, err := peerService{n}.Ping(ctx, req.Peer)
		if err != nil {
			return nil, err
		}
		return api.PingResult{PeerID: id, RTTMS: float64(rtt.Microseconds()) / 1000}, nil
	})
	return n.root.Subscribe(api.TopicHello)
}

func (n *Node) status() api.Status {
	s := api.Status{
		PeerID:    n.host.ID(),
		DID:       string(n.cfg.Key.DID()),
		Version:   n.cfg.Version,
		UptimeSec: time.Since(n.started).Seconds(),
		Peers:     len(n.host.Peers()),
		Actors:    n.sys.Stats(),
	}
	if sn := n.subnetsRunning(); sn != nil {
		s.Subnet = sn.status()
	}
	return s
}

// nodeInfo implements apiserver.NodeService.
type nodeInfo struct{ n *Node }

func (s nodeInfo) Info(context.Context) api.Node {
	return api.Node{
		PeerID:  s.n.host.ID(),
		DID:     string(s.n.cfg.Key.DID()),
		Addrs:   s.n.host.Addrs(),
		Version: s.n.cfg.Version,
		Started: s.n.started.UTC(),
		UserDID: string(s.n.cfg.UserDID),
	}
}

// peerService implements apiserver.PeerService.
type peerService struct{ n *Node }

func (s peerService) Peers(context.Context) []api.Peer {
	var out []api.Peer
	for _, p := range s.n.host.Peers() {
		did, _ := identity.DIDFromPeerID(p.ID)
		out = append(out, api.Peer{ID: p.ID, DID: string(did), Addrs: p.Addrs, Connected: p.Connected, LatencyMS: float64(p.Latency.Microseconds()) / 1000})
	}
	return out
}

func (s peerService) Connect(ctx context.Context, addr string) (string, error) {
	id, err := s.n.host.Connect(ctx, addr)
	return id, badAddress(err)
}

// badAddress marks the p2p layer's complaints about an address as the
// caller's mistake (400), not the node's.
func badAddress(err error) error {
	if errors.Is(err, p2p.ErrBadAddress) {
		return &apiserver.BadRequest{Err: err}
	}
	return err
}

// Ping accepts a peer ID or a DID.
func (s peerService) Ping(ctx context.Context, peer string) (string, time.Duration, error) {
	id, err := PeerIDOf(peer)
	if err != nil {
		return "", 0, err
	}
	rtt, err := s.n.host.Ping(ctx, id)
	return id, rtt, badAddress(err)
}

// PeerIDOf accepts a peer ID or a did:key and returns the peer ID.
func PeerIDOf(s string) (string, error) {
	if identity.DID(s).Valid() {
		return identity.DID(s).PeerID()
	}
	if _, err := identity.DIDFromPeerID(s); err != nil {
		return "", &apiserver.BadRequest{Err: fmt.Errorf("%q is neither a peer ID nor a did:key", s)}
	}
	return s, nil
}
