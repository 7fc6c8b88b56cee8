package devnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/dmsnet/dms/api"
)

// ProbeTimeout bounds Probe's questions to one node.
const ProbeTimeout = 3 * time.Second

// NodeStatus is one node of `dms devnet status`.
type NodeStatus struct {
	Name  string `json:"name"`
	Home  string `json:"home"`
	Log   string `json:"log"`
	PID   int    `json:"pid"`
	Alive bool   `json:"alive"`
	// State is running (the API answers), unreachable (the process
	// lives, its API does not answer) or stopped.
	State     string         `json:"state"`
	PeerID    string         `json:"peer_id,omitempty"`
	API       string         `json:"api,omitempty"`
	Peers     int            `json:"peers"` // connected peers
	Onboarded *api.Resources `json:"onboarded"`
	Executors []string       `json:"executors,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// Status is `dms devnet status`: the devnet and how each node is.
type Status struct {
	Dir            string       `json:"dir"`
	Operator       Operator     `json:"operator"`
	PassphraseFile string       `json:"passphrase_file"`
	Nodes          []NodeStatus `json:"nodes"`
}

// Status asks every node of st, at once, how it is.
func (st *State) Status(ctx context.Context) Status {
	s := Status{Dir: st.Dir, Operator: st.Operator, PassphraseFile: st.PassphraseFile, Nodes: make([]NodeStatus, len(st.Nodes))}
	var wg sync.WaitGroup
	for i, n := range st.Nodes {
		wg.Go(func() { s.Nodes[i] = Probe(ctx, n) })
	}
	wg.Wait()
	return s
}

// Probe asks a node's process and API how it is.
func Probe(ctx context.Context, n Node) NodeStatus {
	s := NodeStatus{Name: n.Name, Home: n.Home, Log: n.Log, PID: n.PID, PeerID: n.PeerID, Executors: n.Executors, State: "stopped"}
	s.Alive = Alive(n.PID, n.Home)
	if !s.Alive {
		return s
	}
	s.State = "unreachable"
	c, err := Client(n.Home, nil)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.API = APIAddr(n.Home)
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	self, err := c.Node(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.State, s.PeerID = "running", self.PeerID
	peers, err := c.Peers(ctx)
	if err != nil {
		s.Error = fmt.Sprintf("list peers: %v", err)
		return s
	}
	for _, p := range peers {
		if p.Connected {
			s.Peers++
		}
	}
	snap, err := c.Resources(ctx)
	if err != nil {
		s.Error = fmt.Sprintf("resources: %v", err)
		return s
	}
	s.Executors = snap.Machine.Executors
	if snap.Onboarded != nil {
		r := snap.Onboarded.Resources
		s.Onboarded = &r
	}
	return s
}

// Alive returns the nodes of st whose process is alive.
func (st *State) Alive() []Node {
	var live []Node
	for _, n := range st.Nodes {
		if Alive(n.PID, n.Home) {
			live = append(live, n)
		}
	}
	return live
}

// Stopped is the outcome of Down.
type Stopped struct {
	Dir     string   `json:"dir"`
	Stopped []string `json:"stopped"` // names of the nodes that were running
	Removed bool     `json:"removed"`
}

// Down stops every node of the devnet in dir (see Stop) and, unless keep,
// removes dir. Without dir it does nothing; a dir without a state file is
// refused.
func Down(ctx context.Context, dir string, keep bool, timeout time.Duration) (Stopped, error) {
	res := Stopped{Dir: dir, Stopped: []string{}}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if !Exists(dir) {
		return res, fmt.Errorf("%s is not a devnet (no %s): not touching it", dir, StateFile)
	}
	st, err := Load(dir)
	if err != nil {
		return res, err
	}
	var procs []Proc
	names := map[int]string{}
	for _, n := range st.Nodes {
		procs = append(procs, Proc{PID: n.PID, Home: n.Home})
		names[n.PID] = n.Name
	}
	stopped, err := Stop(ctx, procs, timeout)
	for _, p := range stopped {
		res.Stopped = append(res.Stopped, names[p.PID])
	}
	if err != nil {
		return res, fmt.Errorf("stop the devnet in %s: %w", dir, err)
	}
	if !keep {
		if err := os.RemoveAll(dir); err != nil {
			return res, fmt.Errorf("remove %s: %w", dir, err)
		}
		res.Removed = true
	}
	return res, nil
}
