package placement

import (
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

func TestExecutorHint(t *testing.T) {
	req := func(execs ...string) deployproto.NodeRequest {
		return deployproto.NodeRequest{Name: "n", Request: match.Request{Executors: execs}}
	}
	offer := func(execs ...string) Answer {
		return Answer{BidReply: deployproto.BidReply{Offer: &match.Offer{Executors: execs}}}
	}
	for _, tc := range []struct {
		name    string
		reqs    []deployproto.NodeRequest
		replies map[string]Answer
		want    string
	}{
		{"offered", []deployproto.NodeRequest{req("docker")}, map[string]Answer{"p1": offer("wasm"), "p2": offer("docker")}, ""},
		{"missing on a wasm-only network", []deployproto.NodeRequest{req("docker")}, map[string]Answer{"p1": offer("wasm"), "p2": offer("wasm")},
			"no provider offers executor docker (on a devnet: dms devnet up --executor wasm,docker)"},
		{"two missing, two nodes", []deployproto.NodeRequest{req("vm"), req("docker"), req("wasm")}, map[string]Answer{"p1": offer("wasm")},
			"no provider offers executors docker, vm (on a devnet: dms devnet up --executor wasm,docker,vm)"},
		{"a feature is no executor", []deployproto.NodeRequest{req("vm", "vm/kernel")}, map[string]Answer{"p1": offer("vm", "wasm")}, ""},
		{"a feature beside a missing executor", []deployproto.NodeRequest{req("vm", "vm/kernel")}, map[string]Answer{"p1": offer("wasm", "docker/gpu")},
			"no provider offers executor vm (on a devnet: dms devnet up --executor wasm,vm)"},
		{"a node that has not onboarded is no provider", []deployproto.NodeRequest{req("docker")},
			map[string]Answer{"p1": offer("wasm"), "self": {BidReply: deployproto.BidReply{Offer: &match.Offer{Executors: []string{"docker", "wasm"}},
				NoBids: []deployproto.NoBid{{Node: "n", Kind: deployproto.KindOnboarding}}}}},
			"no provider offers executor docker (on a devnet: dms devnet up --executor wasm,docker)"},
		{"subnets offered", []deployproto.NodeRequest{req("docker", "subnet")}, map[string]Answer{"p1": offer("docker", "subnet")}, ""},
		{"no subnets", []deployproto.NodeRequest{req("docker", "subnet")}, map[string]Answer{"p1": offer("docker")}, "no provider offers subnets (network.subnet)"},
		{"no subnets, no executor", []deployproto.NodeRequest{req("docker", "subnet")}, map[string]Answer{"p1": offer("wasm")},
			"no provider offers executor docker (on a devnet: dms devnet up --executor wasm,docker); no provider offers subnets (network.subnet)"},
		{"no provider answered", []deployproto.NodeRequest{req("docker")}, map[string]Answer{}, ""},
		{"only refusals, no offer", []deployproto.NodeRequest{req("docker")}, map[string]Answer{"p1": {}}, ""},
		{"providers offering nothing", []deployproto.NodeRequest{req("docker")}, map[string]Answer{"p1": offer()},
			"no provider offers executor docker (on a devnet: dms devnet up --executor docker)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExecutorHint(Round{Requests: tc.reqs, Replies: tc.replies}); got != tc.want {
				t.Errorf("ExecutorHint = %q, want %q", got, tc.want)
			}
		})
	}
}
