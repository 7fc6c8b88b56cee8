package devnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dmsnet/dms/internal/atomicfile"
)

// StateFile is the name of the state file in a devnet directory.
const StateFile = "devnet.json"

// StateVersion is the version of the state file format this package
// writes and reads.
const StateVersion = 1

// State is the content of <dir>/devnet.json.
type State struct {
	Version int       `json:"version"`
	Dir     string    `json:"dir"` // absolute
	Created time.Time `json:"created"`
	// Executors are the executors enabled in every node's configuration
	// (what `dms devnet up --executor` asked for).
	Executors []string `json:"executors"`
	// PassphraseFile holds the passphrase of every key of every node
	// (mode 0600); DMS_PASSPHRASE_FILE names it to the CLI and the nodes.
	PassphraseFile string `json:"passphrase_file"`
	// Operator is the user key every node trusts for /dms: node1's user.
	Operator Operator `json:"operator"`
	Nodes    []Node   `json:"nodes"`
	// Times says how long the steps of up took; Mesh how the nodes came
	// to be connected (absent with one node, or in a file of an older dms).
	Times Times       `json:"times"`
	Mesh  *MeshRecord `json:"mesh,omitempty"`
}

// Times are the durations of up's first steps, in milliseconds.
type Times struct {
	HomesMS int64 `json:"homes_ms"` // dms init and configuration of every home
	StartMS int64 `json:"start_ms"` // from node1's start until every node's API answered
}

// MeshRecord is how up connected the nodes: the first GraceMS it left
// their discovery (bootstrap, DHT) alone, then dialed the pairs still
// apart.
type MeshRecord struct {
	TookMS     int64 `json:"took_ms"` // until every node listed every other as connected
	GraceMS    int64 `json:"grace_ms"`
	Discovered bool  `json:"discovered"` // discovery connected every pair within the grace
	Apart      int   `json:"apart"`      // pairs still apart when the grace ended
	Dialed     int   `json:"dialed"`     // connections up asked for after it
}

// Operator is the devnet's operator key and the home that holds it.
type Operator struct {
	DID  string `json:"did"`
	Home string `json:"home"`
}

// Node is one node process of the devnet.
type Node struct {
	Name string `json:"name"` // node1, node2, ...
	Home string `json:"home"` // its dms home, <dir>/<name>
	Log  string `json:"log"`  // its stdout and stderr
	// PID of its `dms run` process, also its process group; 0 before it
	// was started.
	PID     int      `json:"pid"`
	PeerID  string   `json:"peer_id,omitempty"`
	DID     string   `json:"did,omitempty"`
	UserDID string   `json:"user_did,omitempty"`
	Addrs   []string `json:"addrs,omitempty"` // full multiaddrs
	API     string   `json:"api,omitempty"`   // host:port of its REST API
	// Executors are the executors the node can use (enabled and usable
	// on this machine).
	Executors []string `json:"executors,omitempty"`
}

// Path returns the path of the state file in dir.
func Path(dir string) string { return filepath.Join(dir, StateFile) }

// Exists reports whether dir holds a state file.
func Exists(dir string) bool {
	_, err := os.Stat(Path(dir))
	return err == nil
}

// Load reads the state of the devnet in dir. The error wraps
// fs.ErrNotExist when dir holds no devnet.
func Load(dir string) (*State, error) {
	data, err := os.ReadFile(Path(dir))
	if err != nil {
		return nil, fmt.Errorf("read devnet state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("devnet state %s: %w", Path(dir), err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("devnet state %s: version %d, this dms reads version %d", Path(dir), st.Version, StateVersion)
	}
	for i, n := range st.Nodes {
		if n.Name == "" || n.Home == "" {
			return nil, fmt.Errorf("devnet state %s: node %d has no name or home", Path(dir), i+1)
		}
	}
	return &st, nil
}

// Save writes the state to <st.Dir>/devnet.json atomically (mode 0600).
func (st *State) Save() error {
	if st.Dir == "" {
		return errors.New("save devnet state: no directory")
	}
	st.Version = StateVersion
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save devnet state: %w", err)
	}
	if err := atomicfile.WriteFile(Path(st.Dir), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save devnet state: %w", err)
	}
	return nil
}
