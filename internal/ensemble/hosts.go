package ensemble

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// HostRef is a value in an allocation's execution that names another
// allocation or node of the ensemble as a host: WORDPRESS_DB_HOST=db,
// DATABASE_URL=mysql://db/x, a command argument db:3306, db.internal.
//
// Allocation names resolve (as <name>.internal) only on the deployment's
// subnet, which an ensemble asks for with `network: {subnet: true}`
// (docs/ensemble.md, "Networking"): without it, `dms validate` and `dms
// translate` warn about each HostRef; with it, only about names the
// subnet does not resolve (nodes').
type HostRef struct {
	// Allocation is the allocation whose execution holds the value.
	Allocation string `json:"allocation"`
	// Field says where in its execution: "env WORDPRESS_DB_HOST",
	// "cmd[2]", "entrypoint[0]", "args[1]".
	Field string `json:"field"`
	// Path is the YAML path of the value, as in Problem.Path.
	Path string `json:"path"`
	// Target is the name used as a host; Kind says whether it is an
	// "allocation" or a "node" (an allocation when it is both).
	Target string `json:"target"`
	Kind   string `json:"kind"`
	// Subnet is set when the ensemble has a subnet (network.subnet): the
	// reference is to a node, whose name the subnet does not resolve.
	Subnet bool `json:"subnet,omitempty"`
}

// Msg says what the reference is and why it fails, without the
// allocation: "env WORDPRESS_DB_HOST names allocation db as a host; ...".
func (r HostRef) Msg() string {
	if r.Subnet {
		return fmt.Sprintf("%s names %s %s as a host; the subnet resolves allocation names (<allocation>.internal), not node names (docs/ensemble.md#networking)",
			r.Field, r.Kind, r.Target)
	}
	return fmt.Sprintf("%s names %s %s as a host; allocations reach each other by name only on a subnet: add `network: {subnet: true}` to the ensemble (docs/ensemble.md#networking)",
		r.Field, r.Kind, r.Target)
}

// String is the one-line warning: "allocation wordpress: env
// WORDPRESS_DB_HOST names allocation db as a host; ...".
func (r HostRef) String() string { return "allocation " + r.Allocation + ": " + r.Msg() }

// HostReferences returns every place in the spec's executions (env
// values; cmd, entrypoint and args items) that names another allocation or
// node of the ensemble as a host, in a stable order (allocation, then
// field). A value counts as naming a host when it is a URL whose host is
// the name (mysql://user@db:3306/x), the name with a port (db:3306), the
// name with .internal (db.internal), or the bare name where a host is
// expected: the whole value of an environment variable whose name says
// host, address, server, URL… (DB_HOST=db), or of a --flag saying so
// (--db-host=db, --host db). An allocation naming itself or its own node
// is not reported, nor, when the ensemble has a subnet (network.subnet),
// a reference to an allocation (it resolves as <name>.internal). It is pure, and bounded by the size of the spec.
func HostReferences(s *Spec) []HostRef {
	if s == nil {
		return nil
	}
	kinds := map[string]string{}
	for name := range s.Nodes {
		kinds[name] = "node"
	}
	for name := range s.Allocations {
		kinds[name] = "allocation"
	}
	own := map[string]string{} // allocation → its node
	for _, node := range mapkeys.Sorted(s.Nodes) {
		for _, a := range s.Nodes[node].Allocations {
			if _, ok := own[a]; !ok {
				own[a] = node
			}
		}
	}
	var refs []HostRef
	for _, name := range mapkeys.Sorted(s.Allocations) {
		x := s.Allocations[name].Execution
		base := keyPath("allocations", name) + ".execution"
		seen := map[[2]string]bool{}
		add := func(field, path string, hosts []string) {
			for _, h := range hosts {
				kind, ok := kinds[h]
				if !ok || h == name || h == own[name] || seen[[2]string{field, h}] || s.Network.Subnet && kind == "allocation" {
					continue
				}
				seen[[2]string{field, h}] = true
				refs = append(refs, HostRef{Allocation: name, Field: field, Path: path, Target: h, Kind: kind, Subnet: s.Network.Subnet})
			}
		}
		for _, k := range mapkeys.Sorted(x.Env) {
			add("env "+k, keyPath(base+".env", k), hostsIn(x.Env[k], hostKey(k)))
		}
		for _, list := range []struct {
			field string
			items []string
		}{{"entrypoint", x.Entrypoint}, {"cmd", x.Cmd}, {"args", x.Args}} {
			for i, item := range list.items {
				flagHost := false
				if i > 0 {
					prev := list.items[i-1]
					flagHost = strings.HasPrefix(prev, "-") && !strings.Contains(prev, "=") && hostKey(prev)
				}
				add(fmt.Sprintf("%s[%d]", list.field, i), indexPath(base+"."+list.field, i), hostsIn(item, flagHost))
			}
		}
	}
	return refs
}

// hostWords are the parts of a variable's or flag's name that say its
// value is a host.
var hostWords = []string{"host", "addr", "server", "url", "uri", "endpoint", "dsn", "broker", "upstream", "backend", "peer", "remote"}

// hostKey says whether a variable or flag name says its value is a host.
func hostKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range hostWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// hostsIn returns the candidate host names in a value, lower case, with
// .internal removed: the hosts of URLs, of host:port items and of
// name.internal items anywhere in it (split at spaces, commas and
// semicolons), and the value itself when bare is set and it is one word.
// In a --flag=value item, the flag's name decides for a bare value.
func hostsIn(v string, bare bool) []string {
	var out []string
	items := strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == ';' || r == '"' || r == '\''
	})
	for _, item := range items {
		itemBare := bare && len(items) == 1
		if i := strings.Index(item, "://"); i >= 0 {
			host, _ := splitHostPort(authority(item[i+3:]))
			if h, ok := hostName(host); ok {
				out = append(out, h)
			}
			continue
		}
		if i := strings.LastIndexByte(item, '='); i >= 0 {
			// KEY=value or --flag=value: the name before decides.
			itemBare = hostKey(item[:i])
			item = item[i+1:]
		}
		if i := strings.LastIndexByte(item, '@'); i >= 0 {
			item = item[i+1:] // user@host
		}
		host, port := splitHostPort(authority(item))
		h, ok := hostName(host)
		if !ok {
			continue
		}
		if port || itemBare || strings.HasSuffix(strings.TrimSuffix(strings.ToLower(host), "."), ".internal") {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// authority cuts a URL's rest (or an item) at its path, query or fragment
// and drops its user info.
func authority(s string) string {
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// splitHostPort splits host:port; port says whether a valid port number
// followed the host.
func splitHostPort(s string) (host string, port bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, false
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 1 || n > 65535 {
		return s, false
	}
	return s[:i], true
}

// hostName returns h as a name of the ensemble could be written: lower
// case, without a final dot or .internal; ok is false when it cannot be
// one (not a DNS label).
func hostName(h string) (string, bool) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	h = strings.TrimSuffix(h, ".internal")
	return h, IsName(h)
}
