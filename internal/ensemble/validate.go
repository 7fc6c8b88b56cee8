package ensemble

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Validate checks what the spec means: names are DNS labels; executor,
// type, restart policy and protocols are known values; resources are
// positive; execution fields fit the executor; ports are in range and not
// published twice on a node; healthchecks belong to services and probe a
// declared port; depends_on names existing allocations without a cycle;
// every allocation is on exactly one node; edges join two known nodes;
// durations are positive; volumes fit their kind and mode (volumes.go:
// bucket names, endpoints, prefixes, credentials, url and sha256 of a url
// volume, sizes); location codes and peers are well formed; the
// reschedule bounds are sane (none negative, interval 1s to 30 days while
// attempts is not 0, delay at most max_delay, max_delay at most a day);
// standby orchestrators are well-formed peers, distinct, and no more than
// orchestrators-1.
//
// It expects the defaults to be set (SetDefaults; Parse does both). The
// error is Problems, with paths but no lines (Parse adds the lines).
//
// Both also check the limits (limits.go): the counts, and the size and
// values of the ensemble as deployed.
func (s *Spec) Validate() error {
	probs := validate(s, nil)
	if len(probs) == 0 {
		probs = deployable(s)
	}
	return probs.err()
}

// validate checks s. pos maps the paths present in the source to their
// lines; nil means the spec was built in Go (every field counts as set).
func validate(s *Spec, pos map[string]int) Problems {
	v := &validator{pos: pos}
	v.walk(reflect.ValueOf(s).Elem(), "")
	v.spec(s)
	return v.probs.sort()
}

type validator struct {
	pos    map[string]int
	probs  Problems
	allocs []string // the allocation names, sorted
}

func (v *validator) addf(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Line: v.line(path), Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of path, or of its nearest ancestor in the source.
func (v *validator) line(path string) int {
	if v.pos == nil {
		return 0
	}
	for p := path; ; p = parentPath(p) {
		if l, ok := v.pos[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
	}
}

// has reports whether path was written in the source (always, for a spec
// built in Go).
func (v *validator) has(path string) bool {
	if v.pos == nil {
		return true
	}
	_, ok := v.pos[path]
	return ok
}

// walk applies the ens tags (required, enum, min, max) to every field
// under rv. A zero field absent from the source is only checked for being
// required.
func (v *validator) walk(rv reflect.Value, p string) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.walk(rv.Elem(), p)
		}
	case reflect.Map:
		if rv.Type().Elem().Kind() == reflect.Struct {
			for _, k := range rv.MapKeys() {
				v.walk(rv.MapIndex(k), keyPath(p, k.String()))
			}
		}
	case reflect.Slice:
		if !reachesStruct(rv.Type().Elem()) {
			return // nothing to check, and no path to make per element
		}
		for i := range rv.Len() {
			v.walk(rv.Index(i), indexPath(p, i))
		}
	case reflect.Struct:
		for _, f := range fieldsOf(rv.Type()) {
			fv := rv.Field(f.index)
			// The field's path is made only when something needs it: the
			// source's positions, a problem, or a walk below it.
			fp, made := "", false
			path := func() string {
				if !made {
					fp, made = keyPath(p, f.name), true
				}
				return fp
			}
			written := v.pos != nil && v.has(path())
			if fv.IsZero() && !written {
				switch fv.Kind() {
				case reflect.String, reflect.Int, reflect.Slice:
					if f.required {
						v.addf(path(), "missing%s", want(f.enum))
					}
				}
			} else if f.checks() {
				v.field(f, fv, path())
			}
			if f.walks {
				v.walk(fv, path())
			}
		}
	}
}

// checks reports whether field has anything to check of a value: an enum
// or bounds.
func (f field) checks() bool { return len(f.enum) > 0 || f.min != nil || f.max != nil }

func want(enum []string) string {
	if len(enum) == 0 {
		return ""
	}
	return " (want " + oneOf(enum) + ")"
}

// field checks one written value against its enum and bounds.
func (v *validator) field(f field, fv reflect.Value, p string) {
	if len(f.enum) > 0 && fv.Kind() == reflect.String {
		if s := fv.String(); !slices.Contains(f.enum, s) {
			hint := ""
			if len(f.enum) > 1 {
				hint = didYouMean(s, f.enum)
			}
			if hint == "" {
				hint = want(f.enum)
			}
			v.addf(p, "unknown value %q%s", s, hint)
		}
	}
	if fv.Kind() == reflect.Int && (f.min != nil || f.max != nil) {
		n := fv.Int()
		switch {
		case f.min != nil && f.max != nil && (n < *f.min || n > *f.max):
			v.addf(p, "%d is out of range (%d to %d)", n, *f.min, *f.max)
		case f.min != nil && f.max == nil && n < *f.min:
			v.addf(p, "must be at least %d, got %d", *f.min, n)
		}
	}
}

// Bounds of contract.interval (those of package contract).
const (
	MinContractInterval = time.Second
	MaxContractInterval = 24 * time.Hour
)

// contract checks the contract block: the interval, when set, within
// [MinContractInterval, MaxContractInterval]; a budget below max_price is
// allowed (it buys less than an hour).
func (v *validator) contract(c Contract) {
	switch {
	case c.Interval < 0:
		v.addf("contract.interval", "must not be negative, got %s", formatDuration(c.Interval))
	case c.Interval == 0 && v.pos != nil && v.has("contract.interval"):
		v.addf("contract.interval", "must be at least %s, got 0s (omit it for the node's default)", formatDuration(MinContractInterval))
	case c.Interval > 0 && c.Interval < MinContractInterval:
		v.addf("contract.interval", "%s is shorter than %s", formatDuration(c.Interval), formatDuration(MinContractInterval))
	case c.Interval > MaxContractInterval:
		v.addf("contract.interval", "%s is longer than %s", formatDuration(c.Interval), formatDuration(MaxContractInterval))
	}
	// Money cannot be negative once decoded; a Spec built in Go can.
	if c.MaxPrice < 0 {
		v.addf("contract.max_price", "must not be negative, got %s", c.MaxPrice)
	}
	if c.Budget < 0 {
		v.addf("contract.budget", "must not be negative, got %s", c.Budget)
	}
}

// positive reports a duration that is negative, or zero though written.
func (v *validator) positive(p string, d time.Duration) {
	if d < 0 || d == 0 && v.pos != nil && v.has(p) {
		v.addf(p, "must be positive, got %s", formatDuration(d))
	}
}

func (v *validator) spec(s *Spec) {
	if len(s.Allocations) == 0 {
		v.addf("allocations", "no allocations (an ensemble needs at least one)")
	}
	v.counts(s)
	for _, k := range sortedKeys(s.Metadata) {
		if k == "" {
			v.addf(keyPath("metadata", k), "empty key")
		}
	}
	firstContract := map[string]int{}
	for i, c := range s.Contracts {
		p := indexPath("contracts", i)
		if strings.TrimSpace(c) == "" {
			v.addf(p, "empty contract reference")
		} else if j, dup := firstContract[c]; dup {
			v.addf(p, "duplicate of contracts[%d]", j)
		} else {
			firstContract[c] = i
		}
	}
	v.contract(s.Contract)
	t := s.Timeouts
	v.positive("timeouts.queue", t.Queue)
	v.positive("timeouts.execution", t.Execution)
	v.positive("timeouts.total", t.Total)
	if t.Total > 0 && t.Execution > t.Total {
		v.addf("timeouts.execution", "%s is longer than timeouts.total (%s)", formatDuration(t.Execution), formatDuration(t.Total))
	}
	if t.Total > 0 && t.Queue > t.Total {
		v.addf("timeouts.queue", "%s is longer than timeouts.total (%s)", formatDuration(t.Queue), formatDuration(t.Total))
	}

	v.allocs = sortedKeys(s.Allocations)
	for _, name := range v.allocs {
		v.allocation(s, name)
	}
	v.cycles(s)
	v.nodes(s)
	v.edges(s)
	v.reschedule(s.Reschedule)
	v.supervision(s.Supervision)
}

// WasmSubnetProblem is why a wasm allocation cannot be in an ensemble
// with network.subnet.
const WasmSubnetProblem = "the wasm executor has no sockets (WASI preview 1), so it cannot join the deployment's subnet (network.subnet)"

// executorFields lists the execution fields each executor uses.
var executorFields = map[Executor][]string{
	Docker: {"image", "entrypoint", "cmd", "env", "workdir"},
	Wasm:   {"module", "args", "env"},
	VM:     {"kernel", "initrd", "rootfs", "kernel_args", "cmd", "env"},
}

func (v *validator) allocation(s *Spec, name string) {
	a := s.Allocations[name]
	p := keyPath("allocations", name)
	if !IsName(name) {
		v.addf(p, "%s", nameProblem(name))
	}
	if a.Resources.CPU <= 0 && !(v.pos != nil && !v.has(p+".resources.cpu")) {
		v.addf(p+".resources.cpu", "must be positive")
	}
	if a.Resources.RAM == 0 && !(v.pos != nil && !v.has(p+".resources.ram")) {
		v.addf(p+".resources.ram", "must be positive")
	}
	v.execution(p+".execution", a.Executor, a.Execution)

	if len(a.Ports) > 0 && a.Executor == Wasm {
		v.addf(p+".ports", "the wasm executor does not support ports")
	}
	if s.Network.Subnet && a.Executor == Wasm {
		v.addf(p+".executor", "%s", WasmSubnetProblem)
	}
	inner, public := map[string]int{}, map[string]int{} // "80/tcp" -> first index
	for i, port := range a.Ports {
		pp := indexPath(p+".ports", i)
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if j, dup := inner[key]; dup {
			v.addf(pp, "duplicate of ports[%d] (%s)", j, key)
			continue
		}
		inner[key] = i
		if port.Public == 0 {
			continue
		}
		pub := fmt.Sprintf("%d/%s", port.Public, port.Protocol)
		if j, dup := public[pub]; dup {
			v.addf(pp+".public", "%s is already published by ports[%d]", pub, j)
			continue
		}
		public[pub] = i
	}

	mounts := map[string]string{}
	for _, vn := range sortedKeys(a.Volumes) {
		vol := a.Volumes[vn]
		vp := keyPath(p+".volumes", vn)
		if !IsName(vn) {
			v.addf(vp, "%s", nameProblem(vn))
		}
		v.volume(vp, vol)
		if vol.Path == "" {
			continue // reported as missing
		}
		if !path.IsAbs(vol.Path) {
			v.addf(vp+".path", "%q is not an absolute path", vol.Path)
		} else if clean := path.Clean(vol.Path); clean == "/" {
			v.addf(vp+".path", "cannot mount a volume on /")
		} else if other, dup := mounts[clean]; dup {
			v.addf(vp+".path", "%q is also the path of volume %s", vol.Path, other)
		} else {
			mounts[clean] = vn
		}
	}

	if h := a.Healthcheck; h != nil {
		v.healthcheck(p, a, h)
	}

	seen := map[string]bool{}
	for i, d := range a.DependsOn {
		dp := indexPath(p+".depends_on", i)
		switch _, ok := s.Allocations[d]; {
		case d == name:
			v.addf(dp, "an allocation cannot depend on itself")
		case !ok:
			v.addf(dp, "no allocation %q%s", d, didYouMean(d, v.allocs))
		case seen[d]:
			v.addf(dp, "%s is listed twice", d)
		}
		seen[d] = true
	}

	r := a.Restart
	rp := p + ".restart"
	if r.Policy == Never {
		if r.MaxRestarts != 0 {
			v.addf(rp+".max_restarts", "not used with policy never")
		}
		if r.Backoff != 0 {
			v.addf(rp+".backoff", "not used with policy never")
		}
	} else {
		v.positive(rp+".backoff", r.Backoff)
	}
}

func (v *validator) execution(p string, ex Executor, e Execution) {
	uses, known := executorFields[ex]
	if !known {
		return // the executor is reported
	}
	rv := reflect.ValueOf(e)
	for _, f := range fieldsOf(rv.Type()) {
		if rv.Field(f.index).IsZero() || slices.Contains(uses, f.name) {
			continue
		}
		var users []string
		for _, other := range []Executor{Docker, VM, Wasm} {
			if slices.Contains(executorFields[other], f.name) {
				users = append(users, string(other))
			}
		}
		v.addf(keyPath(p, f.name), "the %s executor does not use %s (%s does)", ex, f.name, oneOf(users))
	}
	switch ex {
	case Docker:
		if e.Image == "" {
			v.addf(p+".image", "missing (the docker executor needs an image)")
		} else if err := checkImage(e.Image); err != nil {
			v.addf(p+".image", "%v", err)
		}
		if e.Workdir != "" && !path.IsAbs(e.Workdir) {
			v.addf(p+".workdir", "%q is not an absolute path", e.Workdir)
		}
	case Wasm:
		if e.Module == "" {
			v.addf(p+".module", "missing (the wasm executor needs a module)")
		}
	case VM:
		if e.Initrd == "" && e.Rootfs == "" {
			v.addf(p, "the vm executor needs an initrd or a rootfs")
		}
	}
	for _, f := range fileFields {
		if ref := *f.get(&e); ref != "" && slices.Contains(uses, f.name) {
			if err := checkFileRef(ref); err != nil {
				v.addf(keyPath(p, f.name), "%v", err)
			}
		}
	}
	for _, k := range sortedKeys(e.Env) {
		if k == "" || strings.ContainsAny(k, "= \t\r\n\x00") {
			v.addf(keyPath(p+".env", k), "%q is not a variable name", k)
		}
	}
}

// checkImage reports an image reference that no registry would accept.
func checkImage(ref string) error {
	bad := func(why string) error { return fmt.Errorf("%q is not an image reference (%s)", ref, why) }
	if strings.ContainsFunc(ref, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("no spaces allowed")
	}
	if strings.HasPrefix(ref, "-") || strings.HasPrefix(ref, ":") || strings.HasPrefix(ref, "@") || strings.HasPrefix(ref, "/") {
		return bad("must start with a name")
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && digest == "" {
		return bad("empty digest")
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if i == len(name)-1 {
			return bad("empty tag")
		}
		name = name[:i]
	}
	// The registry host (first component with a dot or a port) may have
	// upper case; the repository may not.
	if first, rest, ok := strings.Cut(name, "/"); ok && strings.ContainsAny(first, ".:") {
		name = rest
	}
	if name != strings.ToLower(name) {
		return bad("the repository name must be lower case")
	}
	return nil
}

func (v *validator) healthcheck(p string, a Allocation, h *Healthcheck) {
	hp := p + ".healthcheck"
	if a.Type != Service {
		v.addf(hp, "only a service can have a healthcheck (this allocation is a %s)", a.Type)
	}
	n := 0
	for _, set := range []bool{len(h.Exec) > 0, h.HTTP != nil, h.TCP != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.addf(hp, "want exactly one of exec, http or tcp, got %d", n)
	}
	if len(h.Exec) > 0 && a.Executor != Docker && a.Executor != "" {
		v.addf(hp+".exec", "the %s executor cannot run a command in the allocation (use http or tcp)", a.Executor)
	}
	probe := func(pp string, port int) {
		for _, ap := range a.Ports {
			if ap.Port == port && ap.Protocol == TCP {
				return
			}
		}
		if port >= 1 && port <= 65535 {
			v.addf(pp+".port", "%d is not one of the allocation's tcp ports", port)
		}
	}
	if h.HTTP != nil {
		probe(hp+".http", h.HTTP.Port)
		if !strings.HasPrefix(h.HTTP.Path, "/") {
			v.addf(hp+".http.path", "%q does not start with /", h.HTTP.Path)
		}
	}
	if h.TCP != nil {
		probe(hp+".tcp", h.TCP.Port)
	}
	v.positive(hp+".interval", h.Interval)
	v.positive(hp+".timeout", h.Timeout)
	if h.StartPeriod < 0 {
		v.addf(hp+".start_period", "must not be negative, got %s", formatDuration(h.StartPeriod))
	}
	if h.Interval > 0 && h.Timeout > h.Interval {
		v.addf(hp+".timeout", "%s is longer than the interval (%s)", formatDuration(h.Timeout), formatDuration(h.Interval))
	}
}

// cycles reports one dependency cycle, if any, on the allocation it starts
// from.
func (v *validator) cycles(s *Spec) {
	deps := map[string][]string{}
	for name, a := range s.Allocations {
		for _, d := range a.DependsOn {
			if _, ok := s.Allocations[d]; ok && d != name {
				deps[name] = append(deps[name], d)
			}
		}
		if deps[name] == nil {
			deps[name] = []string{}
		}
	}
	if c := findCycle(deps); c != nil {
		v.addf(keyPath(keyPath("allocations", c[0]), "depends_on"), "dependency cycle: %s", strings.Join(c, " -> "))
	}
}

func (v *validator) nodes(s *Spec) {
	if len(s.Nodes) == 0 && v.pos == nil {
		return // one node per allocation (SetDefaults not called yet)
	}
	host := map[string]string{} // allocation -> node
	peers := map[string]string{}
	for _, name := range sortedKeys(s.Nodes) {
		n := s.Nodes[name]
		p := keyPath("nodes", name)
		if !IsName(name) && (v.pos == nil || v.has("nodes")) { // default nodes: reported on the allocation
			v.addf(p, "%s", nameProblem(name))
		}
		if len(n.Allocations) == 0 && v.pos != nil && v.has(p+".allocations") {
			v.addf(p+".allocations", "empty (a node runs at least one allocation)")
		}
		for i, a := range n.Allocations {
			ap := indexPath(p+".allocations", i)
			if _, ok := s.Allocations[a]; !ok {
				v.addf(ap, "no allocation %q%s", a, didYouMean(a, v.allocs))
				continue
			}
			if other, dup := host[a]; dup {
				if other == name {
					v.addf(ap, "%s is listed twice", a)
				} else {
					v.addf(ap, "%s is already on node %s (an allocation runs on one node)", a, other)
				}
				continue
			}
			host[a] = name
		}
		accepted := map[string]bool{}
		for _, c := range n.Location.Accept {
			accepted[c] = true
		}
		for _, list := range []struct {
			key   string
			codes []string
		}{{"accept", n.Location.Accept}, {"reject", n.Location.Reject}} {
			for i, c := range list.codes {
				cp := indexPath(p+".location."+list.key, i)
				if err := CheckLocationCode(c); err != nil {
					v.addf(cp, "%v", err)
				} else if list.key == "reject" && accepted[c] {
					v.addf(cp, "%s is also accepted", c)
				}
			}
		}
		if n.Peer != "" {
			if err := checkPeer(n.Peer); err != nil {
				v.addf(p+".peer", "%v", err)
			} else if other, dup := peers[n.Peer]; dup {
				v.addf(p+".peer", "node %s is pinned to the same peer (each node needs a provider of its own)", other)
			} else {
				peers[n.Peer] = name
			}
		}
		v.publicPorts(s, name, n)
	}
	for _, a := range v.allocs {
		if _, ok := host[a]; !ok {
			v.addf(keyPath("allocations", a), "not on any node (list it in the allocations of one node)")
		}
	}
}

// publicPorts reports a public port published twice on one node.
func (v *validator) publicPorts(s *Spec, node string, n Node) {
	used := map[string]string{} // "8080/tcp" -> path of the first
	for _, a := range n.Allocations {
		for i, port := range s.Allocations[a].Ports {
			if port.Public == 0 {
				continue
			}
			key := fmt.Sprintf("%d/%s", port.Public, port.Protocol)
			pp := indexPath(keyPath("allocations", a)+".ports", i)
			if first, dup := used[key]; dup {
				if parentPath(first) != parentPath(pp) { // same allocation: reported already
					v.addf(pp+".public", "%s is already published on node %s by %s", key, node, first)
				}
				continue
			}
			used[key] = pp
		}
	}
}

// checkPeer reports a peer that is neither a libp2p peer ID nor a did:key.
func checkPeer(peer string) error {
	id := strings.TrimPrefix(peer, "did:key:z")
	if id == peer && strings.HasPrefix(peer, "did:") {
		return fmt.Errorf("%q is not a peer (only did:key DIDs name a peer)", peer)
	}
	const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	ok := len(id) >= 40 && len(id) <= 128
	for _, c := range id {
		if !strings.ContainsRune(base58, c) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a peer ID (want a libp2p peer ID such as 12D3KooW..., or a did:key)", peer)
	}
	return nil
}

func (v *validator) edges(s *Spec) {
	nodes := sortedKeys(s.Nodes)
	seen := map[[2]string]int{}
	for i, e := range s.Edges {
		p := indexPath("edges", i)
		if len(e.Between) != 2 {
			if len(e.Between) > 0 {
				v.addf(p+".between", "want two node names, got %d", len(e.Between))
			}
		} else {
			ok := true
			for j, n := range e.Between {
				if _, known := s.Nodes[n]; !known && len(s.Nodes) > 0 {
					v.addf(indexPath(p+".between", j), "no node %q%s", n, didYouMean(n, nodes))
					ok = false
				}
			}
			a, b := min(e.Between[0], e.Between[1]), max(e.Between[0], e.Between[1])
			switch first, dup := seen[[2]string{a, b}]; {
			case a == b:
				v.addf(p+".between", "an edge joins two different nodes")
			case dup && ok:
				v.addf(p, "same nodes as edges[%d]", first)
			default:
				seen[[2]string{a, b}] = i
			}
		}
		if e.RTT == 0 && e.Bandwidth == 0 && !(v.pos != nil && v.has(p+".rtt")) && !(v.pos != nil && v.has(p+".bandwidth")) {
			v.addf(p, "no constraint (set rtt, bandwidth or both)")
		}
		v.positive(p+".rtt", e.RTT)
		if e.Bandwidth == 0 && v.pos != nil && v.has(p+".bandwidth") {
			v.addf(p+".bandwidth", "must be positive")
		}
	}
}

// Bounds of the reschedule block beyond those in its ens tags.
const (
	MinRescheduleInterval = time.Second
	MaxRescheduleInterval = 30 * 24 * time.Hour
	MaxRescheduleDelay    = 24 * time.Hour
)

// reschedule checks the durations of the reschedule block: none negative,
// an interval of at least a second when redeploys are on and at most 30
// days, a delay no longer than max_delay, and max_delay at most a day.
func (v *validator) reschedule(r Reschedule) {
	const p = "reschedule"
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"interval", r.Interval}, {"delay", r.Delay}, {"max_delay", r.MaxDelay}} {
		if d.d < 0 {
			v.addf(p+"."+d.key, "must not be negative, got %s", formatDuration(d.d))
		}
	}
	switch {
	case r.Interval > MaxRescheduleInterval:
		v.addf(p+".interval", "%s is longer than %s (30 days)", formatDuration(r.Interval), formatDuration(MaxRescheduleInterval))
	case r.Attempts > 0 && r.Interval >= 0 && r.Interval < MinRescheduleInterval:
		v.addf(p+".interval", "%s is shorter than %s (attempts is %d; set attempts: 0 to turn redeploys off)", formatDuration(r.Interval), formatDuration(MinRescheduleInterval), r.Attempts)
	}
	if r.MaxDelay > MaxRescheduleDelay {
		v.addf(p+".max_delay", "%s is longer than %s", formatDuration(r.MaxDelay), formatDuration(MaxRescheduleDelay))
	}
	if r.Delay > 0 && r.MaxDelay >= 0 && r.Delay > r.MaxDelay {
		v.addf(p+".delay", "%s is longer than max_delay (%s)", formatDuration(r.Delay), formatDuration(r.MaxDelay))
	}
}

// supervision checks the standby orchestrators: well-formed peers, none
// listed twice, and no more than orchestrators-1 of them.
func (v *validator) supervision(sv Supervision) {
	const p = "supervision"
	first := map[string]int{}
	for i, peer := range sv.Standbys {
		sp := indexPath(p+".standbys", i)
		if err := checkPeer(peer); err != nil {
			v.addf(sp, "%v", err)
		} else if j, dup := first[peer]; dup {
			v.addf(sp, "duplicate of standbys[%d]", j)
		} else {
			first[peer] = i
		}
	}
	if n := len(sv.Standbys); n > 0 && sv.Orchestrators >= 1 && n > sv.Orchestrators-1 {
		standbys := fmt.Sprintf("%d standbys", n)
		if n == 1 {
			standbys = "1 standby"
		}
		if v.pos == nil || v.has(p+".orchestrators") {
			v.addf(p+".standbys", "%s, but orchestrators: %d leaves room for %d (the orchestrating node plus its standbys)", standbys, sv.Orchestrators, sv.Orchestrators-1)
		} else {
			v.addf(p+".standbys", "%s, at most %d (orchestrators is at most %d, the orchestrating node included)", standbys, maxOrchestrators-1, maxOrchestrators)
		}
	}
}

// formatDuration writes d as time.Duration does, without zero trailing
// units: 10m, 1h30m, 1.5s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
