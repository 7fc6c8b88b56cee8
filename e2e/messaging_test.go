package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

type peer struct {
	ID        string `json:"id"`
	Connected bool   `json:"connected"`
}

func peersOf(t testing.TB, h *e2etest.Home) map[string]bool {
	var ps []peer
	h.JSON(t, &ps, "peers", "list")
	m := map[string]bool{}
	for _, p := range ps {
		if p.Connected {
			m[p.ID] = true
		}
	}
	return m
}

// Two homes on loopback: connect, list each other, invoke a public
// behavior, be refused a /dms one until the other home anchors our user.
func TestTwoNodes(t *testing.T) {
	bin := e2etest.Binary(t)
	a, b := e2etest.NewHome(t, bin), e2etest.NewHome(t, bin)
	na, nb := a.Start(t), b.Start(t)
	idA, idB := na.PeerID(t), nb.PeerID(t)

	a.MustRun(t, "peers", "connect", nb.Addr(t))
	poll.Eventually(t, 10*time.Second, "each lists the other", func() bool {
		return peersOf(t, a)[idB] && peersOf(t, b)[idA]
	})

	var hello struct {
		Hello string `json:"hello"`
	}
	out := a.MustRun(t, "invoke", "/public/hello", "--to", idB)
	if err := json.Unmarshal([]byte(out), &hello); err != nil || hello.Hello != a.DID(t, "user") {
		t.Fatalf("hello reply = %s (%v), want a greeting of %s", out, err, a.DID(t, "user"))
	}
	// By DID too.
	a.MustRun(t, "invoke", "/public/hello", "--to", b.DID(t, "node"))

	r := a.Run(t, "invoke", "/dms/node/peers/list", "--to", idB)
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "denied:") {
		t.Fatalf("peers/list before anchoring: %s; want exit 1 and a line starting denied:", r)
	}

	b.MustRun(t, "cap", "anchor", "--root", a.DID(t, "user"), "--cmd", "/dms/node/peers")
	var ps []peer
	out = a.MustRun(t, "invoke", "/dms/node/peers/list", "--to", idB)
	if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) == 0 {
		t.Fatalf("peers/list after anchoring: %s", out)
	}
	// The anchor covers /dms/node/peers only.
	r = a.Run(t, "invoke", "/dms/node/onboarding/status", "--to", idB)
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "denied:") {
		t.Fatalf("a command outside the anchor: %s", r)
	}
}

// Three nodes: a broadcast from one reaches the two others, and a node
// given only a bootstrap address discovers the third.
func TestThreeNodes(t *testing.T) {
	bin := e2etest.Binary(t)
	a, b, c := e2etest.NewHome(t, bin), e2etest.NewHome(t, bin), e2etest.NewHome(t, bin)
	na := a.Start(t)
	boot := na.Addr(t)
	nb := b.Start(t, "--bootstrap", boot)
	nc := c.Start(t, "--bootstrap", boot)
	idB, idC := nb.PeerID(t), nc.PeerID(t)

	poll.Eventually(t, 30*time.Second, "b discovers c through the DHT", func() bool {
		return peersOf(t, b)[idC]
	})

	var res struct {
		Replies []struct {
			From struct {
				Host string `json:"host"`
			} `json:"from"`
		} `json:"replies"`
	}
	poll.Eventually(t, 20*time.Second, "a broadcast from a reaches b and c", func() bool {
		a.JSON(t, &res, "invoke", "/public/hello", "--topic", "hello", "--timeout", "2s")
		got := map[string]bool{}
		for _, r := range res.Replies {
			got[r.From.Host] = true
		}
		return got[idB] && got[idC]
	})
}

// The REST API refuses to listen on a reachable address, and a node stops
// cleanly on SIGTERM: exit 0, api.addr removed.
func TestDaemonLifecycle(t *testing.T) {
	bin := e2etest.Binary(t)
	h := e2etest.NewHome(t, bin)
	r := h.Run(t, "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--api-listen", "0.0.0.0:0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "not a loopback address") || strings.Count(r.Stderr, "\n") != 1 {
		t.Fatalf("--api-listen 0.0.0.0:0: %s; want exit 1 with one line naming the loopback rule", r)
	}
	n := h.Start(t)
	if err := n.Stop(t); err != nil {
		t.Fatalf("dms run after SIGTERM: %v, want exit 0", err)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "api.addr")); !os.IsNotExist(err) {
		t.Fatalf("api.addr still there after shutdown: %v", err)
	}
	if r := h.Run(t, "peers", "list"); r.Code != 1 || !strings.Contains(r.Stderr, "no running node") {
		t.Fatalf("peers list with no node: %s", r)
	}
}
