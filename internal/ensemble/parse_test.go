package ensemble

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// problems parses src and returns its problems as strings.
func problems(t *testing.T, src string) []string {
	t.Helper()
	s, err := Parse([]byte(src))
	if err == nil {
		if s == nil {
			t.Fatal("Parse returned neither a spec nor an error")
		}
		return nil
	}
	if s != nil {
		t.Error("Parse returned a spec with an error")
	}
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Parse error is %T, want Problems", err)
	}
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = p.String()
	}
	return out
}

// TestParseMalformed is the table of malformed ensembles: each gets every
// one of its problems, with path and line, and nothing else.
func TestParseMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "size with a space",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution:
      image: nginx
    resources:
      ram: 4 GB
`,
			want: []string{`allocations.web.resources.ram: "4 GB" is not a size (line 8)`},
		},
		{
			name: "bad sizes and cpu",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution: {image: nginx}
    resources:
      cpu: lots
      ram: -1
      disk: 1e400
`,
			want: []string{
				`allocations.web.resources.cpu: "lots" is not a CPU amount (line 7)`,
				`allocations.web.resources.ram: "-1" is not a size (line 8)`,
				`allocations.web.resources.disk: "1e400" is not a size (line 9)`,
			},
		},
		{
			name: "zero resources",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution: {image: nginx}
    resources: {cpu: 0, ram: 0}
`,
			want: []string{
				`allocations.web.resources.cpu: must be positive (line 6)`,
				`allocations.web.resources.ram: must be positive (line 6)`,
			},
		},
		{
			name: "unknown field with a near miss",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution:
      imgae: nginx
`,
			want: []string{
				`allocations.web.execution.image: missing (the docker executor needs an image) (line 5)`,
				`allocations.web.execution.imgae: unknown field (did you mean "image"?) (line 6)`,
			},
		},
		{
			name: "field at the wrong level",
			src: `version: v1
allocations:
  web:
    executor: docker
    image: nginx
    execution: {image: nginx}
`,
			want: []string{`allocations.web.image: unknown field (it belongs under execution: execution.image) (line 5)`},
		},
		{
			name: "unknown top-level field",
			src: `version: v1
allocation:
  web: {}
`,
			want: []string{
				`allocations: no allocations (an ensemble needs at least one) (line 1)`,
				`allocation: unknown field (did you mean "allocations"?) (line 2)`,
			},
		},
		{
			name: "missing and wrong version",
			src: `allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{`version: missing (want v1) (line 1)`},
		},
		{
			name: "unsupported version",
			src: `version: v2
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{`version: unknown value "v2" (want v1) (line 1)`},
		},
		{
			name: "unknown executor and type",
			src: `version: v1
allocations:
  a:
    type: servce
    executor: podman
    execution: {image: nginx}
`,
			want: []string{
				`allocations.a.type: unknown value "servce" (did you mean "service"?) (line 4)`,
				`allocations.a.executor: unknown value "podman" (want docker, vm or wasm) (line 5)`,
			},
		},
		{
			name: "missing executor",
			src: `version: v1
allocations:
  a:
    execution: {image: nginx}
`,
			want: []string{`allocations.a.executor: missing (want docker, vm or wasm) (line 3)`},
		},
		{
			name: "bad allocation names",
			src: `version: v1
allocations:
  Web:
    executor: wasm
    execution: {module: a.wasm}
  -bad-:
    executor: wasm
    execution: {module: a.wasm}
`,
			want: []string{
				`allocations.Web: "Web" is not a valid name (use lower case: "web") (line 3)`,
				`allocations.-bad-: "-bad-" is not a valid name (lower-case letters, digits and '-', starting and ending with a letter or digit) (line 6)`,
			},
		},
		{
			name: "execution fields of another executor",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution:
      image: nginx
      module: a.wasm
      kernel_args: quiet
`,
			want: []string{
				`allocations.a.execution.module: the docker executor does not use module (wasm does) (line 7)`,
				`allocations.a.execution.kernel_args: the docker executor does not use kernel_args (vm does) (line 8)`,
			},
		},
		{
			name: "wasm without module, vm without disk",
			src: `version: v1
allocations:
  a:
    executor: wasm
    execution: {args: [x]}
  b:
    executor: vm
    execution: {kernel: vmlinuz}
`,
			want: []string{
				`allocations.a.execution.module: missing (the wasm executor needs a module) (line 5)`,
				`allocations.b.execution: the vm executor needs an initrd or a rootfs (line 8)`,
			},
		},
		{
			name: "bad file references and image",
			src: `version: v1
allocations:
  a:
    executor: wasm
    execution: {module: "https://example.com/a.wasm"}
  b:
    executor: vm
    execution: {rootfs: "sha256:abc"}
  c:
    executor: docker
    execution: {image: "Nginx:latest", workdir: app}
  d:
    executor: docker
    execution: {image: "alpine:"}
`,
			want: []string{
				`allocations.a.execution.module: "https://example.com/a.wasm": URLs are not supported (want a path relative to the ensemble file, or sha256:<hex>) (line 5)`,
				`allocations.b.execution.rootfs: "sha256:abc" is not a sha256 reference (want sha256: and 64 lower-case hex digits) (line 8)`,
				`allocations.c.execution.image: "Nginx:latest" is not an image reference (the repository name must be lower case) (line 11)`,
				`allocations.c.execution.workdir: "app" is not an absolute path (line 11)`,
				`allocations.d.execution.image: "alpine:" is not an image reference (empty tag) (line 14)`,
			},
		},
		{
			name: "cmd as a string, env entry without value",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution:
      image: alpine
      cmd: echo hi
      env: [A=1, B, A=2]
`,
			want: []string{
				`allocations.a.execution.cmd: want a list of strings such as ["sh", "-c", "echo hi"], got a string (line 7)`,
				`allocations.a.execution.env[1]: want KEY=VALUE, got "B" (line 8)`,
				`allocations.a.execution.env[2]: A is set twice (line 8)`,
			},
		},
		{
			name: "ports out of range, duplicated, bad protocol",
			src: `version: v1
allocations:
  a:
    type: service
    executor: docker
    execution: {image: nginx}
    ports:
      - port: 70000
      - {port: 80, protocol: sctp}
      - {port: 443, public: 8443}
      - {port: 443, public: 9443}
      - {port: 444, public: 8443}
`,
			want: []string{
				`allocations.a.ports[0].port: 70000 is out of range (1 to 65535) (line 8)`,
				`allocations.a.ports[1].protocol: unknown value "sctp" (want tcp or udp) (line 9)`,
				`allocations.a.ports[3]: duplicate of ports[2] (443/tcp) (line 11)`,
				`allocations.a.ports[4].public: 8443/tcp is already published by ports[2] (line 12)`,
			},
		},
		{
			name: "public port twice on one node",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
    ports: [{port: 80, public: 8080}]
  api:
    type: service
    executor: docker
    execution: {image: api}
    ports: [{port: 9000, public: 8080}]
nodes:
  main:
    allocations: [api, web]
`,
			want: []string{`allocations.web.ports[0].public: 8080/tcp is already published on node main by allocations.api.ports[0] (line 7)`},
		},
		{
			name: "ports on wasm",
			src: `version: v1
allocations:
  a:
    type: service
    executor: wasm
    execution: {module: a.wasm}
    ports: [{port: 80}]
`,
			want: []string{`allocations.a.ports: the wasm executor does not support ports (line 7)`},
		},
		{
			name: "subnet on wasm",
			src: `version: v1
allocations:
  a:
    executor: wasm
    execution: {module: a.wasm}
  b:
    executor: docker
    execution: {image: nginx}
network: {subnet: true}
`,
			want: []string{`allocations.a.executor: the wasm executor has no sockets (WASI preview 1), so it cannot join the deployment's subnet (network.subnet) (line 4)`},
		},
		{
			name: "healthcheck on a task, two probes, undeclared port",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution: {image: nginx}
    healthcheck:
      exec: [true]
      tcp: {port: 8080}
`,
			want: []string{
				`allocations.a.healthcheck: only a service can have a healthcheck (this allocation is a task) (line 6)`,
				`allocations.a.healthcheck: want exactly one of exec, http or tcp, got 2 (line 6)`,
				`allocations.a.healthcheck.tcp.port: 8080 is not one of the allocation's tcp ports (line 8)`,
			},
		},
		{
			name: "healthcheck timings",
			src: `version: v1
allocations:
  a:
    type: service
    executor: docker
    execution: {image: nginx}
    ports: [{port: 80}]
    healthcheck:
      http: {port: 80, path: healthz}
      interval: 5s
      timeout: 10s
      retries: 0
      start_period: soon
`,
			want: []string{
				`allocations.a.healthcheck.http.path: "healthz" does not start with / (line 9)`,
				`allocations.a.healthcheck.timeout: 10s is longer than the interval (5s) (line 11)`,
				`allocations.a.healthcheck.retries: must be at least 1, got 0 (line 12)`,
				`allocations.a.healthcheck.start_period: "soon" is not a duration (line 13)`,
			},
		},
		{
			name: "depends_on unknown, self and twice",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution: {image: nginx}
    depends_on: [dbb, web, db, db]
  db:
    executor: docker
    execution: {image: postgres}
`,
			want: []string{
				`allocations.web.depends_on[0]: no allocation "dbb" (did you mean "db"?) (line 6)`,
				`allocations.web.depends_on[1]: an allocation cannot depend on itself (line 6)`,
				`allocations.web.depends_on[3]: db is listed twice (line 6)`,
			},
		},
		{
			name: "dependency cycle",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution: {image: alpine}
    depends_on: [b]
  b:
    executor: docker
    execution: {image: alpine}
    depends_on: [c]
  c:
    executor: docker
    execution: {image: alpine}
    depends_on: [a]
`,
			want: []string{`allocations.a.depends_on: dependency cycle: a -> b -> c -> a (line 6)`},
		},
		{
			name: "restart policy",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution: {image: alpine}
    restart: {policy: sometimes}
  b:
    executor: docker
    execution: {image: alpine}
    restart: {policy: never, max_restarts: 3, backoff: 1s}
  c:
    executor: docker
    execution: {image: alpine}
    restart: {policy: always, max_restarts: -1}
`,
			want: []string{
				`allocations.a.restart.policy: unknown value "sometimes" (want never, on-failure or always) (line 6)`,
				`allocations.b.restart.backoff: not used with policy never (line 10)`,
				`allocations.b.restart.max_restarts: not used with policy never (line 10)`,
				`allocations.c.restart.max_restarts: must be at least 1, got -1 (line 14)`,
			},
		},
		{
			name: "allocation on no node, on two nodes, unknown",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution: {image: nginx}
  db:
    executor: docker
    execution: {image: postgres}
nodes:
  one:
    allocations: [web]
  two:
    allocations: [web, wbe]
`,
			want: []string{
				`allocations.db: not on any node (list it in the allocations of one node) (line 6)`,
				`nodes.two.allocations[0]: web is already on node one (an allocation runs on one node) (line 13)`,
				`nodes.two.allocations[1]: no allocation "wbe" (did you mean "web"?) (line 13)`,
			},
		},
		{
			name: "node without allocations, redundancy zero, bad peer",
			src: `version: v1
allocations:
  web:
    executor: docker
    execution: {image: nginx}
nodes:
  main:
    allocations: [web]
    redundancy: 0
    peer: not-a-peer
  spare:
    allocations: []
`,
			want: []string{
				`nodes.main.redundancy: must be at least 1, got 0 (line 9)`,
				`nodes.main.peer: "not-a-peer" is not a peer ID (want a libp2p peer ID such as 12D3KooW..., or a did:key) (line 10)`,
				`nodes.spare.allocations: empty (a node runs at least one allocation) (line 12)`,
			},
		},
		{
			name: "two nodes pinned to one peer",
			src: `version: v1
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
  b: {executor: wasm, execution: {module: b.wasm}}
nodes:
  one: {allocations: [a], peer: 12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo}
  two: {allocations: [b], peer: 12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo}
`,
			want: []string{`nodes.two.peer: node one is pinned to the same peer (each node needs a provider of its own) (line 7)`},
		},
		{
			name: "location codes",
			src: `version: v1
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
nodes:
  a:
    allocations: [a]
    location:
      accept: [Europe, de, US-CA, XX-1, mars]
      reject: [US-CA]
`,
			want: []string{
				`nodes.a.location.accept[0]: "Europe" is not a location code (did you mean "europe"?) (line 8)`,
				`nodes.a.location.accept[1]: "de" is not a location code (did you mean "DE"?) (line 8)`,
				`nodes.a.location.accept[3]: "XX-1" is not a location code (no country XX) (line 8)`,
				`nodes.a.location.accept[4]: "mars" is not a location code (want a continent such as europe, a country such as DE, or a subdivision such as US-CA) (line 8)`,
				`nodes.a.location.reject[0]: US-CA is also accepted (line 9)`,
			},
		},
		{
			name: "edges",
			src: `version: v1
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
  b: {executor: wasm, execution: {module: b.wasm}}
edges:
  - between: [a, c]
    rtt: 10ms
  - between: [a, a]
    bandwidth: 10MB
  - between: [b, a]
  - between: [a, b]
    rtt: -5ms
  - between: [a, b, c]
    rtt: 1ms
`,
			want: []string{
				`edges[0].between[1]: no node "c" (line 6)`,
				`edges[1].between: an edge joins two different nodes (line 8)`,
				`edges[1].bandwidth: "10MB" is not a bandwidth (line 9)`,
				`edges[2]: no constraint (set rtt, bandwidth or both) (line 10)`,
				`edges[3]: same nodes as edges[2] (line 11)`,
				`edges[3].rtt: must be positive, got -5ms (line 12)`,
				`edges[4].between: want two node names, got 3 (line 13)`,
			},
		},
		{
			name: "timeouts",
			src: `version: v1
timeouts:
  queue: 10 minutes
  execution: 2h
  total: 1h
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{
				`timeouts.queue: "10 minutes" is not a duration (line 3)`,
				`timeouts.execution: 2h is longer than timeouts.total (1h) (line 4)`,
			},
		},
		{
			name: "duration too large",
			src: `version: v1
timeouts:
  queue: 9999999h
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{
				`timeouts.queue: "9999999h" is too large (at most 2562047h47m16.854775807s) (line 3)`,
			},
		},
		{
			name: "volumes",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution: {image: alpine}
    volumes:
      out: {path: out}
      Data: {path: /data, kind: nfs}
      logs: {path: /data/}
      cache: {read_only: maybe}
`,
			want: []string{
				`allocations.a.volumes.out.path: "out" is not an absolute path (line 7)`,
				`allocations.a.volumes.Data: "Data" is not a valid name (use lower case: "data") (line 8)`,
				`allocations.a.volumes.Data.kind: unknown value "nfs" (want local, s3 or url) (line 8)`,
				`allocations.a.volumes.logs.path: "/data/" is also the path of volume Data (line 9)`,
				`allocations.a.volumes.cache.path: missing (line 10)`,
				`allocations.a.volumes.cache.read_only: want true or false, got "maybe" (line 10)`,
			},
		},
		{
			name: "wrong kinds",
			src: `version: v1
metadata: [a, b]
allocations:
  a:
    executor: [docker]
    execution: nginx
    ports: {port: 80}
    depends_on: b
`,
			want: []string{
				`metadata: want a mapping, got a list (line 2)`,
				`allocations.a.executor: want a string, got a list (line 5)`,
				`allocations.a.execution: want a mapping, got a string (line 6)`,
				`allocations.a.ports: want a list, got a mapping (line 7)`,
				`allocations.a.depends_on: want a list of strings such as ["sh", "-c", "echo hi"], got a string (line 8)`,
			},
		},
		{
			name: "integer where a number is not whole",
			src: `version: v1
allocations:
  a:
    type: service
    executor: docker
    execution: {image: nginx}
    ports: [{port: 80.5}]
    resources:
      gpus: [{vendor: nvidia, count: two}, {vendor: ati}]
`,
			want: []string{
				`allocations.a.ports[0].port: want a whole number, got "80.5" (line 7)`,
				`allocations.a.resources.gpus[0].count: want a whole number, got "two" (line 9)`,
				`allocations.a.resources.gpus[1].vendor: unknown value "ati" (want nvidia, amd or intel) (line 9)`,
			},
		},
		{
			name: "duplicate keys",
			src: `version: v1
allocations:
  a:
    executor: docker
    executor: wasm
    execution: {image: nginx}
  a:
    executor: docker
`,
			want: []string{
				`allocations.a.executor: duplicate key (first on line 4) (line 5)`,
				`allocations.a: duplicate key (first on line 3) (line 7)`,
			},
		},
		{
			name: "YAML syntax error",
			src: `version: v1
allocations:
  a:
    executor: docker
   execution: {image: nginx}
`,
			want: []string{`YAML syntax: did not find expected key (line 5)`},
		},
		{
			name: "YAML mapping in a plain value",
			src: `version: v1
allocations:
  a: b: c
`,
			want: []string{`YAML syntax: mapping values are not allowed in this context (line 3)`},
		},
		{
			name: "YAML tab indentation",
			src:  "version: v1\nallocations:\n\ta: {}\n",
			want: []string{`YAML syntax: found character that cannot start any token (line 3)`},
		},
		{
			name: "two documents",
			src: `version: v1
allocations: {a: {executor: wasm, execution: {module: a.wasm}}}
---
version: v1
`,
			want: []string{`only one YAML document is allowed (found a second one) (line 3)`},
		},
		{
			name: "empty document",
			src:  "# nothing here\n",
			want: []string{`empty document`},
		},
		{
			name: "not a mapping",
			src:  "- a\n- b\n",
			want: []string{`want a mapping, got a list (line 1)`},
		},
		{
			name: "contracts and metadata",
			src: `version: v1
metadata: {"": x, team: {a: b}}
contracts: [did:key:z6Mkabc, "", did:key:z6Mkabc]
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{
				`metadata.team: want a string, got a mapping (line 2)`,
				`metadata[""]: empty key (line 2)`,
				`contracts[1]: empty contract reference (line 3)`,
				`contracts[2]: duplicate of contracts[0] (line 3)`,
			},
		},
		{
			name: "contract block",
			src: `version: v1
contract: {max_price: -1, budget: 1.0000001, interval: 500ms}
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{
				`contract.budget: "1.0000001" is not an amount of money (more than 6 decimals; examples: 0.25, 3) (line 2)`,
				`contract.interval: 500ms is shorter than 1s (line 2)`,
				`contract.max_price: "-1" is not an amount of money (negative; examples: 0.25, 3) (line 2)`,
			},
		},
		{
			name: "contract interval bounds",
			src: `version: v1
contract: {max_price: abc, interval: 25h}
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{
				`contract.interval: 25h is longer than 24h (line 2)`,
				`contract.max_price: "abc" is not an amount of money (malformed number; examples: 0.25, 3) (line 2)`,
			},
		},
		{
			name: "contract interval zero or negative",
			src: `version: v1
contract: {interval: 0s}
allocations:
  a: {executor: wasm, execution: {module: a.wasm}}
`,
			want: []string{
				`contract.interval: must be at least 1s, got 0s (omit it for the node's default) (line 2)`,
			},
		},
		{
			name: "env variable names",
			src: `version: v1
allocations:
  a:
    executor: docker
    execution:
      image: alpine
      env:
        "A B": x
        OK: {nested: true}
`,
			want: []string{
				`allocations.a.execution.env["A B"]: "A B" is not a variable name (line 8)`,
				`allocations.a.execution.env.OK: want a string, got a mapping (line 9)`,
			},
		},
		{
			name: "healthcheck exec on wasm and vm",
			src: `version: v1
allocations:
  a:
    type: service
    executor: vm
    execution: {initrd: initrd.img}
    healthcheck: {exec: [true]}
`,
			want: []string{`allocations.a.healthcheck.exec: the vm executor cannot run a command in the allocation (use http or tcp) (line 7)`},
		},
		{
			name: "merge key of a list",
			src: `version: v1
allocations:
  a:
    <<: [1, 2]
    executor: docker
    execution: {image: alpine}
`,
			want: []string{
				`allocations.a: a merge (<<) needs a mapping, got a number (line 4)`,
			},
		},
		{
			name: "reschedule negative durations",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
reschedule:
  interval: -1h
  delay: -1s
  max_delay: -1m
`,
			want: []string{
				`reschedule.interval: must not be negative, got -1h (line 8)`,
				`reschedule.delay: must not be negative, got -1s (line 9)`,
				`reschedule.max_delay: must not be negative, got -1m (line 10)`,
			},
		},
		{
			name: "reschedule absurd values",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
reschedule:
  attempts: 1001
  interval: 721h
  max_delay: 25h
`,
			want: []string{
				`reschedule.attempts: 1001 is out of range (0 to 1000) (line 8)`,
				`reschedule.interval: 721h is longer than 720h (30 days) (line 9)`,
				`reschedule.max_delay: 25h is longer than 24h (line 10)`,
			},
		},
		{
			name: "reschedule interval too short",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
reschedule:
  attempts: 2
  interval: 500ms
`,
			want: []string{
				`reschedule.interval: 500ms is shorter than 1s (attempts is 2; set attempts: 0 to turn redeploys off) (line 9)`,
			},
		},
		{
			name: "reschedule off with a zero interval",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
reschedule:
  attempts: 0
  interval: 0s
`,
			want: nil,
		},
		{
			name: "reschedule delay longer than max_delay",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
reschedule:
  delay: 2m
`,
			want: []string{
				`reschedule.delay: 2m is longer than max_delay (1m) (line 8)`,
			},
		},
		{
			name: "reschedule delay function",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
reschedule:
  delay_function: linear
`,
			want: []string{
				`reschedule.delay_function: unknown value "linear" (want constant or exponential) (line 8)`,
			},
		},
		{
			name: "supervision unknown strategy",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
supervision:
  strategy: one_for_some
  orchestrators: 6
`,
			want: []string{
				`supervision.strategy: unknown value "one_for_some" (did you mean "one_for_one"?) (line 8)`,
				`supervision.orchestrators: 6 is out of range (1 to 5) (line 9)`,
			},
		},
		{
			name: "supervision bad standbys",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
supervision:
  orchestrators: 5
  standbys:
    - 12D3KooWnot-a-peer
    - did:web:example.com
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp
`,
			want: []string{
				`supervision.standbys[0]: "12D3KooWnot-a-peer" is not a peer ID (want a libp2p peer ID such as 12D3KooW..., or a did:key) (line 10)`,
				`supervision.standbys[1]: "did:web:example.com" is not a peer (only did:key DIDs name a peer) (line 11)`,
				`supervision.standbys[3]: duplicate of standbys[2] (line 13)`,
			},
		},
		{
			name: "supervision more standbys than orchestrators allow",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
supervision:
  orchestrators: 2
  standbys: [12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp, did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK]
`,
			want: []string{
				`supervision.standbys: 2 standbys, but orchestrators: 2 leaves room for 1 (the orchestrating node plus its standbys) (line 9)`,
			},
		},
		{
			name: "supervision too many standbys",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
supervision:
  standbys:
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDE1
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDE2
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDE3
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDE4
    - 12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDE5
`,
			want: []string{
				`supervision.standbys: 5 standbys, at most 4 (orchestrators is at most 5, the orchestrating node included) (line 8)`,
			},
		},
		{
			name: "supervision zero orchestrators",
			src: `version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
supervision:
  orchestrators: 0
`,
			want: []string{
				`supervision.orchestrators: 0 is out of range (1 to 5) (line 8)`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, tc.src)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(`version: v1
allocations:
  web:
    type: service
    executor: docker
    execution: {image: nginx}
    ports: [{port: 80}]
    healthcheck:
      http: {port: 80}
      interval: 2s
    volumes: {out: {path: /out}}
    resources: {gpus: [{vendor: nvidia}]}
  job:
    executor: wasm
    execution: {module: job.wasm}
    restart: {policy: on-failure}
`))
	if err != nil {
		t.Fatal(err)
	}
	web, job := s.Allocations["web"], s.Allocations["job"]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"job type", job.Type, Task},
		{"cpu", web.Resources.CPU, match.MilliCPU(1000)},
		{"ram", web.Resources.RAM, match.Bytes(256 << 20)},
		{"disk", web.Resources.Disk, match.Bytes(0)},
		{"gpu count", web.Resources.GPUs[0].Count, 1},
		{"protocol", web.Ports[0].Protocol, TCP},
		{"volume kind", web.Volumes["out"].Kind, Local},
		{"http path", web.Healthcheck.HTTP.Path, "/"},
		{"healthcheck retries", web.Healthcheck.Retries, 3},
		{"healthcheck timeout capped by interval", web.Healthcheck.Timeout, 2 * time.Second},
		{"service restart", web.Restart, Restart{Policy: Always, MaxRestarts: 5, Backoff: time.Second}},
		{"task restart on-failure", job.Restart, Restart{Policy: OnFailure, MaxRestarts: 5, Backoff: time.Second}},
		{"nodes", s.Nodes, map[string]Node{"web": {Allocations: []string{"web"}, Redundancy: 1}, "job": {Allocations: []string{"job"}, Redundancy: 1}}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseAnchorsAndMerge(t *testing.T) {
	s, err := Parse([]byte(`version: v1
x-base: &base
  executor: docker
  resources: {cpu: 2, ram: 1GiB}
allocations:
  a:
    <<: *base
    execution: {image: a}
  b:
    <<: *base
    resources: {cpu: 500m}
    execution: {image: b}
`))
	if err == nil {
		t.Fatalf("Parse accepted the unknown key x-base: %+v", s)
	}
	// Anchors live under a known key instead.
	s, err = Parse([]byte(`version: v1
metadata: {owner: me}
allocations:
  a: &base
    executor: docker
    resources: {cpu: 2, ram: 1GiB}
    execution: {image: a}
  b:
    <<: *base
    resources: {cpu: 500m}
    execution: {image: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := s.Allocations["b"]
	if b.Executor != Docker || b.Resources.CPU != 500 || b.Resources.RAM != 256<<20 || b.Execution.Image != "b" {
		t.Errorf("merged b = %+v, want docker, cpu 500m, default ram (resources replaced whole), image b", b)
	}
}

func TestParseLimits(t *testing.T) {
	big := make([]byte, MaxSize+1)
	if got := problems(t, string(big)); len(got) != 1 || !strings.HasPrefix(got[0], "file too large") {
		t.Errorf("problems of a too large file = %q", got)
	}
	// A billion laughs: each level doubles the expansion.
	var b strings.Builder
	b.WriteString("version: v1\nmetadata: {}\nx0: &a0 [a, a]\n")
	for i := 1; i < 30; i++ {
		b.WriteString("x" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [*a" + strconv.Itoa(i-1) + ", *a" + strconv.Itoa(i-1) + "]\n")
	}
	got := problems(t, b.String())
	if len(got) == 0 {
		t.Fatal("a billion laughs parsed")
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "a.b", Line: 3, Msg: "bad"}, "a.b: bad (line 3)"},
		{Problem{Path: "a.b", Msg: "bad"}, "a.b: bad"},
		{Problem{Line: 2, Msg: "bad"}, "bad (line 2)"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"a.b.c":            "a.b",
		"a.b[3]":           "a.b",
		`a["x.y"]`:         "a",
		`a["x[1]"].b`:      `a["x[1]"]`,
		`metadata["a]"]`:   "metadata",
		"a":                "",
		"":                 "",
		"edges[0].between": "edges[0]",
		"edges[0]":         "edges",
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRecursiveAliases(t *testing.T) {
	for _, src := range []string{
		"version: v1\nallocations:\n  a: &x\n    executor: docker\n    execution: {image: a, cmd: *x}\n",
		"version: v1\nallocations: &x {a: *x}\n",
		"version: v1\nallocations:\n  a: &x\n    <<: *x\n    executor: docker\n",
		"version: v1\nmetadata: &m {a: *m}\nallocations: {}\n",
		"version: v1\ncontracts: &c [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
	} {
		if got := problems(t, src); len(got) == 0 {
			t.Errorf("Parse(%q) found no problem", src)
		}
	}
}

// TestParseLargeInputs checks that large, wrong inputs give bounded output.
// Time is not asserted (the machines are shared): a quadratic regression
// shows as the test running into go test's timeout.
func TestParseLargeInputs(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: v1\ncontracts: [")
	for i := range 20000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("x")
	}
	b.WriteString("]\nallocations:\n  one:\n    executor: docker\n    execution: {image: a}\n    ports: [")
	for i := range 20000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{port: 80, public: 8080}")
	}
	b.WriteString("]\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  a%d: {executor: docker, execution: {image: a}, depends_on: [nope%d]}\n", i, i)
	}
	got := problems(t, b.String())
	if len(got) != MaxProblems+1 || got[MaxProblems] != fmt.Sprintf("and %d more problems", 19999+19999+5000+1-MaxProblems) {
		t.Errorf("Parse returned %d problems, the last %q", len(got), got[len(got)-1])
	}
}

func TestParseContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want Contract
	}{
		{"absent", "", Contract{}},
		{"all", "contract: {max_price: 0.5, budget: 3, interval: 30s}\n", Contract{MaxPrice: 500_000, Budget: 3_000_000, Interval: 30 * time.Second}},
		{"string amounts", "contract: {max_price: \"0.000001\", budget: \"12.25\"}\n", Contract{MaxPrice: 1, Budget: 12_250_000}},
		{"bounds", "contract: {interval: 24h}\n", Contract{Interval: 24 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "version: v1\n" + tc.src + "allocations:\n  a: {executor: wasm, execution: {module: a.wasm}}\n"
			s, err := Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if s.Contract != tc.want {
				t.Errorf("Contract = %+v, want %+v", s.Contract, tc.want)
			}
			// The block survives an encode and a parse.
			out, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("parse of the encoding: %v\n%s", err, out)
			}
			if back.Contract != tc.want {
				t.Errorf("after encode: Contract = %+v, want %+v", back.Contract, tc.want)
			}
		})
	}
}
