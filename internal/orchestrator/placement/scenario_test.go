package placement

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the scenarios in testdata/")

// TestScenarios runs the placement scenarios in testdata/: each file is
// an ensemble and what the providers of one bid round answer, then a
// line "----", then the placement and the reasons the core gives. The
// scenario stands in for the network and the providers; everything from
// the ensemble to the reasons is the real code, with the clock injected.
//
// A scenario's input (YAML):
//
//	ensemble: |          # the job, as a user writes it; <peer p1> is p1's peer ID
//	  version: v1 ...
//	providers:           # by name; each is asked in the round
//	  p1:
//	    offer: {...}     # match.Offer as JSON field names (free, executors, location, price, performance)
//	    bids: [node]     # bid for these nodes whether or not they fit (a provider that lies);
//	                     # default: the nodes its offer fits, NoBids for the others (as a real provider)
//	    latencies: {p2: 5}        # measured round trips in ms, by provider name
//	    silent: true              # does not answer
//	    refuse: "why"             # refuses the bid request itself
//	    bad_signature: true       # its bid's signature does not verify
//	excluded: [p3]       # providers that refused a commit earlier (excluded for a minute)
//	max_price: {node: 0.5}  # price ceilings per node and hour (no ensemble field sets them yet)
//
// Run `go test ./internal/orchestrator/placement -run TestScenarios -rewrite`
// after a deliberate change, and read the diff.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("%d scenario files in testdata, want at least 8", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := bytes.Cut(raw, []byte("\n----\n"))
			if !ok {
				t.Fatalf("%s: no line ---- between the input and the expected output", file)
			}
			got, err := runScenario(input)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if *rewrite {
				out := append(append(input, "\n----\n"...), got...)
				if err := os.WriteFile(file, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if string(want) != got {
				t.Errorf("%s: placement differs (go test ./internal/orchestrator/placement -run TestScenarios -rewrite, then read the diff)\n--- got:\n%s--- want:\n%s", file, got, want)
			}
		})
	}
}

type scenario struct {
	Ensemble  string                      `yaml:"ensemble"`
	Providers map[string]scenarioProvider `yaml:"providers"`
	Excluded  []string                    `yaml:"excluded"`
	MaxPrice  map[string]string           `yaml:"max_price"`
}

type scenarioProvider struct {
	Offer        any                `yaml:"offer"`
	Bids         []string           `yaml:"bids"`
	Latencies    map[string]float64 `yaml:"latencies"`
	Silent       bool               `yaml:"silent"`
	Refuse       string             `yaml:"refuse"`
	BadSignature bool               `yaml:"bad_signature"`
}

// scenarioNow is the injected clock of every scenario.
var scenarioNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func runScenario(input []byte) (string, error) {
	var sc scenario
	dec := yaml.NewDecoder(bytes.NewReader(input))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return "", fmt.Errorf("input: %w", err)
	}
	// Providers are named in the scenario; their keys come from their
	// names, so the peer IDs (and the ties they break) are stable.
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range sc.Providers {
			if !yield(n) {
				return
			}
		}
	})
	keys := map[string]*identity.Key{}
	hostOf := map[string]string{}
	nameOf := map[string]string{}
	for _, name := range names {
		seed := sha256.Sum256([]byte("placement scenario " + name))
		k, err := identity.KeyFromSeed(seed[:])
		if err != nil {
			return "", err
		}
		host, err := k.DID().PeerID()
		if err != nil {
			return "", err
		}
		keys[name], hostOf[name], nameOf[host] = k, host, name
	}

	// The ensemble names providers' peer IDs as <peer p2>.
	text := sc.Ensemble
	for name, host := range hostOf {
		text = strings.ReplaceAll(text, "<peer "+name+">", host)
	}
	spec, err := ensemble.Parse([]byte(text))
	if err != nil {
		return "", fmt.Errorf("ensemble: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("ensemble: %w", err)
	}
	reqs := Requests(spec, scenarioNow)
	for node, p := range sc.MaxPrice {
		i := slices.IndexFunc(reqs, func(nr deployproto.NodeRequest) bool { return nr.Name == node })
		if i < 0 {
			return "", fmt.Errorf("max_price: no node %s", node)
		}
		if reqs[i].Request.MaxPrice, err = match.ParseMoney(p); err != nil {
			return "", fmt.Errorf("max_price %s: %w", node, err)
		}
	}

	rd := Round{Requests: reqs, Replies: map[string]Answer{}, Answered: map[string]bool{}, Excluded: map[string]time.Time{}, Now: scenarioNow}
	for _, name := range names {
		p, host := sc.Providers[name], hostOf[name]
		rd.Asked = append(rd.Asked, host)
		handle := actor.Handle{DID: keys[name].DID(), Host: host, Inbox: actor.RootInbox}
		switch {
		case p.Silent:
			continue
		case p.Refuse != "":
			rd.Answered[host] = true
			rd.Replies[host] = Refused(handle, errors.New(p.Refuse))
			continue
		}
		var offer match.Offer
		if p.Offer != nil {
			js, err := json.Marshal(p.Offer)
			if err != nil {
				return "", fmt.Errorf("provider %s: offer: %w", name, err)
			}
			if err := json.Unmarshal(js, &offer); err != nil {
				return "", fmt.Errorf("provider %s: offer: %w", name, err)
			}
		}
		reply, err := bidAs(keys[name], handle, offer, reqs, p, hostOf)
		if err != nil {
			return "", fmt.Errorf("provider %s: %w", name, err)
		}
		rd.Answered[host] = true
		rd.Replies[host] = Open(reply)
	}
	for _, name := range sc.Excluded {
		host, ok := hostOf[name]
		if !ok {
			return "", fmt.Errorf("excluded: no provider %s", name)
		}
		rd.Excluded[host] = scenarioNow.Add(time.Minute)
	}

	// Peer IDs in the output are written as the providers' names.
	rename := func(s string) string {
		for host, name := range nameOf {
			s = strings.ReplaceAll(s, host, name)
			s = strings.ReplaceAll(s, identity.ShortPeerID(host), name)
		}
		return s
	}
	cands, reasons := Rate(rd)
	nodes, _ := Nodes(spec)
	edges := Edges(spec)
	plan, missing := Place(nodes, cands, edges)
	var b strings.Builder
	if plan == nil {
		reasons = Explain(missing, cands, edges, reasons)
		fmt.Fprintf(&b, "no placement: missing %s (%s)\n", strings.Join(missing, ", "), Summarize(reasons))
		if h := ExecutorHint(rd); h != "" {
			fmt.Fprintf(&b, "hint: %s\n", h)
		}
	} else {
		b.WriteString("placement:\n")
		for _, node := range nodes {
			c := plan[node]
			fmt.Fprintf(&b, "  %s: %s (score %.3f, cost %s/h)\n", node, rename(c.Provider.Host), c.Rating.Value, c.Rating.Cost)
		}
		if bad := VerifyBids("d1", plan); bad != nil {
			b.WriteString("unverified bids (excluded, next round):\n")
			writeReasons(&b, bad, rename)
		}
	}
	b.WriteString("reasons:\n")
	writeReasons(&b, reasons, rename)
	return b.String(), nil
}

// bidAs answers the round as a provider with this offer does
// (allocation.Provider): it bids for the nodes its offer fits and says why
// not for the others — unless the scenario makes it bid for given nodes.
func bidAs(key *identity.Key, h actor.Handle, offer match.Offer, reqs []deployproto.NodeRequest, p scenarioProvider, hostOf map[string]string) (deployproto.BidReply, error) {
	reply := deployproto.BidReply{Provider: h, Offer: &offer}
	bid := &deployproto.Bid{Reservation: deployproto.ReservationID("d1", 1), Expires: scenarioNow.Add(30 * time.Second), Offer: offer}
	for _, nr := range reqs {
		switch r := match.Score(offer, nr.Request); {
		case p.Bids != nil && slices.Contains(p.Bids, nr.Name):
			bid.Nodes = append(bid.Nodes, nr.Name)
		case p.Bids != nil:
		case nr.Peer != "" && nr.Peer != h.Host:
			reply.NoBids = append(reply.NoBids, deployproto.NoBid{Node: nr.Name, Kind: deployproto.KindPinned, Reasons: []string{"pinned to another peer"}})
		case !r.Eligible:
			reply.NoBids = append(reply.NoBids, deployproto.NoFit(nr.Name, r.Reasons))
		default:
			bid.Nodes = append(bid.Nodes, nr.Name)
		}
	}
	if len(bid.Nodes) == 0 {
		return reply, nil
	}
	if len(p.Latencies) > 0 {
		bid.Latencies = map[string]float64{}
		for name, ms := range p.Latencies {
			host, ok := hostOf[name]
			if !ok {
				return reply, fmt.Errorf("latencies: no provider %s", name)
			}
			bid.Latencies[host] = ms
		}
	}
	signed, err := deployproto.SignBid(key, "d1", h.Host, bid)
	if err != nil {
		return reply, err
	}
	if p.BadSignature {
		signed.Signature[0] ^= 1
	}
	reply.Bid = signed
	return reply, nil
}

// writeReasons writes one line per reason, sorted, peer IDs renamed.
func writeReasons(b *strings.Builder, rs []Reason, rename func(string) string) {
	lines := make([]string, 0, len(rs))
	for _, r := range rs {
		peer := r.Peer
		if peer == "" {
			peer = "-"
		}
		line := fmt.Sprintf("  %s %s %s", peer, r.Node, r.Kind)
		if len(r.Reasons) > 0 {
			line += ": " + strings.Join(r.Reasons, "; ")
		}
		lines = append(lines, rename(line))
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		lines = append(lines, "  (none)")
	}
	b.WriteString(strings.Join(lines, "\n") + "\n")
}
