package ensemble

import (
	"reflect"
	"strings"
	"testing"
)

// hostsSpec is wordpress, db and cache, each on a node of its own (front,
// back, edge): wordpress names db as its database host.
const hostsSpec = `version: v1
allocations:
  wordpress:
    executor: docker
    execution:
      image: wordpress:6
      env: {WORDPRESS_DB_HOST: db, WORDPRESS_DB_NAME: db, SITE: web}
  db:
    executor: docker
    execution: {image: "mysql:8", env: {MYSQL_DATABASE: db}}
  cache:
    executor: docker
    execution: {image: "redis:7"}
nodes:
  front: {allocations: [wordpress]}
  back: {allocations: [db]}
  edge: {allocations: [cache]}
`

func TestHostReferences(t *testing.T) {
	base, err := Parse([]byte(hostsSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  Env      // replaces wordpress's env
		cmd  []string // wordpress's cmd
		want []string // "field -> kind target"
		sub  bool     // network.subnet
	}{
		{"bare name under a host variable", Env{"WORDPRESS_DB_HOST": "db"}, nil, []string{"env WORDPRESS_DB_HOST -> allocation db"}, false},
		{"bare name under another variable", Env{"WORDPRESS_DB_NAME": "db", "MODE": "cache"}, nil, nil, false},
		{"host and port", Env{"DB": "db:3306"}, nil, []string{"env DB -> allocation db"}, false},
		{"not a port", Env{"DB": "db:x", "T": "db:0", "U": "db:70000"}, nil, nil, false},
		{"url", Env{"DATABASE_URL": "mysql://user:pw@db/wp?x=1"}, nil, []string{"env DATABASE_URL -> allocation db"}, false},
		{"url with port, any variable", Env{"X": "redis://cache:6379/0"}, nil, []string{"env X -> allocation cache"}, false},
		{"url naming no name", Env{"X": "https://example.com/db"}, nil, nil, false},
		{"several hosts in one value", Env{"PEERS": "db:1,cache:2"}, nil, []string{"env PEERS -> allocation cache", "env PEERS -> allocation db"}, false},
		{"url with two hosts", Env{"M": "mongodb://db:27017,cache:27017/x"}, nil, []string{"env M -> allocation cache", "env M -> allocation db"}, false},
		{".internal", Env{"X": "db.internal"}, nil, []string{"env X -> allocation db"}, false},
		{".internal upper case with a final dot", Env{"X": "DB.Internal."}, nil, []string{"env X -> allocation db"}, false},
		{"another domain", Env{"DB_HOST": "db.example.com"}, nil, nil, false},
		{"a node", Env{"BACKEND": "back"}, nil, []string{"env BACKEND -> node back"}, false},
		{"itself and its own node", Env{"SELF_URL": "http://wordpress:80/", "NODE_HOST": "front"}, nil, nil, false},
		{"an unknown name", Env{"DB_HOST": "mysql"}, nil, nil, false},
		{"cmd host:port", nil, []string{"wait-for", "db:3306", "--", "run"}, []string{"cmd[1] -> allocation db"}, false},
		{"cmd --host=name", nil, []string{"app", "--db-host=db"}, []string{"cmd[1] -> allocation db"}, false},
		{"cmd --host name", nil, []string{"app", "--host", "db"}, []string{"cmd[2] -> allocation db"}, false},
		{"cmd bare name", nil, []string{"echo", "db"}, nil, false},
		{"cmd shell script", nil, []string{"sh", "-c", "until nc -z db 3306; do sleep 1; done; curl http://cache:80/"}, []string{"cmd[2] -> allocation cache"}, false},
		{"image reference is not a host", Env{"IMAGE": "ghcr.io/db:1"}, nil, nil, false},
		{"subnet: an allocation resolves", Env{"WORDPRESS_DB_HOST": "db", "X": "db.internal"}, []string{"wait-for", "cache:6379"}, nil, true},
		{"subnet: a node does not", Env{"BACKEND": "back", "DB_HOST": "db"}, nil, []string{"env BACKEND -> node back"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *base
			s.Allocations = map[string]Allocation{}
			for k, v := range base.Allocations {
				s.Allocations[k] = v
			}
			wp := s.Allocations["wordpress"]
			wp.Execution.Env, wp.Execution.Cmd = tc.env, tc.cmd
			s.Allocations["wordpress"] = wp
			s.Network.Subnet = tc.sub
			var got []string
			for _, r := range HostReferences(&s) {
				if r.Allocation != "wordpress" {
					t.Errorf("reference from %s: %+v", r.Allocation, r)
				}
				if r.Subnet != tc.sub {
					t.Errorf("Subnet = %v in %+v", r.Subnet, r)
				}
				got = append(got, r.Field+" -> "+r.Kind+" "+r.Target)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("HostReferences = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHostRefMessage(t *testing.T) {
	s, err := Parse([]byte(hostsSpec))
	if err != nil {
		t.Fatal(err)
	}
	refs := HostReferences(s)
	if len(refs) != 1 {
		t.Fatalf("HostReferences = %+v, want one", refs)
	}
	r := refs[0]
	if r.Path != "allocations.wordpress.execution.env.WORDPRESS_DB_HOST" {
		t.Errorf("Path = %q", r.Path)
	}
	if line := LineOf([]byte(hostsSpec), r.Path); line != 7 {
		t.Errorf("LineOf(%s) = %d, want 7", r.Path, line)
	}
	want := "allocation wordpress: env WORDPRESS_DB_HOST names allocation db as a host; allocations reach each other by name only on a subnet: add `network: {subnet: true}` to the ensemble (docs/ensemble.md#networking)"
	if r.String() != want {
		t.Errorf("String() = %q, want %q", r.String(), want)
	}
	if HostReferences(nil) != nil {
		t.Error("HostReferences(nil) is not nil")
	}
}

func FuzzHostReferences(f *testing.F) {
	for _, seed := range []string{"db", "db:3306", "mysql://u:p@db:3306/x?y=z", "db.internal", "--host=db", "mongodb://db:1,web:2/x", "[::1]:80", "a=b=c@d:1", ""} {
		f.Add("DB_HOST", seed)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		s := &Spec{
			Allocations: map[string]Allocation{
				"web": {Execution: Execution{Env: Env{key: value}, Cmd: strings.Fields(value), Args: []string{"--host", value}}},
				"db":  {},
			},
			Nodes: map[string]Node{"n1": {Allocations: []string{"web"}}, "n2": {Allocations: []string{"db"}}},
		}
		refs := HostReferences(s)
		if again := HostReferences(s); !reflect.DeepEqual(refs, again) {
			t.Fatalf("not deterministic: %+v, then %+v", refs, again)
		}
		for _, r := range refs {
			if r.Allocation != "web" || r.Target == "web" || r.Target == "n1" {
				t.Errorf("reference %+v: from web to another name only", r)
			}
			if !(r.Kind == "allocation" && r.Target == "db" || r.Kind == "node" && r.Target == "n2") {
				t.Errorf("reference %+v names no name of the ensemble", r)
			}
			if !strings.HasPrefix(r.Path, "allocations.web.execution.") || r.Field == "" {
				t.Errorf("reference %+v: bad path or field", r)
			}
		}
	})
}
