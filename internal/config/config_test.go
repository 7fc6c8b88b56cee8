package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/subnet"
)

var rewrite = flag.Bool("rewrite", false, "rewrite docs/config.md")

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestEveryFieldDocumented(t *testing.T) {
	for _, f := range Fields() {
		if f.Doc == "" {
			t.Errorf("config key %s has no doc tag", f.Key)
		}
	}
}

func TestPrecedence(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, FileName), []byte("api:\n  listen: 127.0.0.1:7000\nlog:\n  level: warn\np2p:\n  conn_low: 10\n"), 0o600)
	cfg, err := Load(Source{
		Home:  home,
		Env:   []string{"DMS_LOG_LEVEL=debug", "DMS_P2P_CONN_LOW=20", "DMS_HOME=/ignored", "DMS_PASSPHRASE=x", "PATH=/bin"},
		Flags: map[string]string{"p2p.conn_low": "30"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ key, want string }{
		{"api.listen", "127.0.0.1:7000"}, // file over default
		{"log.level", "debug"},           // env over file
		{"p2p.conn_low", "30"},           // flag over env
		{"p2p.conn_high", "400"},         // default
	}
	for _, tt := range tests {
		if got, _ := Get(cfg, tt.key); got != tt.want {
			t.Errorf("Get(%s) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestSetGet(t *testing.T) {
	tests := []struct {
		key, value, want, wantErr string
	}{
		{key: "p2p.listen", value: "/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/udp/1/quic-v1", want: "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/udp/1/quic-v1"},
		{key: "p2p.bootstrap", value: "", want: ""},
		{key: "p2p.mdns", value: "false", want: "false"},
		{key: "p2p.max_memory", value: "512MiB", want: "512MiB"},
		{key: "actor.default_timeout", value: "1m30s", want: "1m30s"},
		{key: "resources.reserve_cpu", value: "1.5", want: "1.5"},
		{key: "orchestrator.price", value: "0.25", want: "0.25"},
		{key: "orchestrator.reservations_per_peer", value: "3", want: "3"},
		{key: "orchestrator.reserved_share_per_peer", value: "0.25", want: "0.25"},
		{key: "executor.block_networks", value: "169.254.0.0/16, host", want: "169.254.0.0/16,host"},
		{key: "executor.block_networks", value: "", want: ""},
		{key: "p2p.mdns", value: "maybe", wantErr: `p2p.mdns: "maybe" is not true or false`},
		{key: "p2p.conn_low", value: "ten", wantErr: `p2p.conn_low: "ten" is not an integer`},
		{key: "p2p.max_memory", value: "4 GB", wantErr: "not a size"},
		{key: "actor.default_timeout", value: "soon", wantErr: `"soon" is not a duration`},
		{key: "actor.default_timeout", value: "99999999h", wantErr: `"99999999h" is too large (at most 2562047h47m16.854775807s)`},
		{key: "p2p.listn", value: "x", wantErr: `unknown config key "p2p.listn" (did you mean p2p.listen?)`},
		{key: "p2p", value: "x", wantErr: "p2p is a section, not a key"},
		{key: "p2p.listen.x", value: "x", wantErr: "unknown config key"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			cfg := Default()
			err := Set(&cfg, tt.key, tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set(%s, %q) = %v, want error containing %q", tt.key, tt.value, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := Get(cfg, tt.key); got != tt.want {
				t.Fatalf("Get(%s) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Log.Level = "loud"
	cfg.API.Listen = "0.0.0.0:9999"
	cfg.Actor.Mailbox = 0
	cfg.Executor.VM.Accel = "hvf"
	cfg.Executor.VM.Kernel = "vmlinux"
	cfg.Location.Country = "germany"
	cfg.Executor.BlockNetworks = []string{"169.254.0.0/16", "metadata"}
	cfg.Executor.WASM.CPUCgroup = "sys/fs/cgroup"
	cfg.Orchestrator.Lease = Duration(time.Second) // shorter than two heartbeats
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{"log.level", "api.listen", "not a loopback address", "actor.mailbox", "executor.vm.accel", "executor.vm.kernel", "location.country", "executor.block_networks[1]", "executor.wasm.cpu_cgroup", "orchestrator.lease"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; missing %q", err, want)
		}
	}
}

func TestValidateSubdivision(t *testing.T) {
	tests := []struct {
		name, country, sub string
		want               string // "" for valid
	}{
		{"none", "US", "", ""},
		{"in its country", "US", "US-CA", ""},
		{"no country stated", "", "DE-BE", ""},
		{"digits", "FR", "FR-75", ""},
		{"other country", "DE", "US-CA", "not in location.country DE"},
		{"no country part", "US", "CA", "want an ISO 3166-2 code"},
		{"lower case", "US", "us-ca", "want an ISO 3166-2 code"},
		{"too long", "US", "US-CALI", "want an ISO 3166-2 code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.Location.Country, cfg.Location.Subdivision = tt.country, tt.sub
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "location.subdivision") || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want a location.subdivision error with %q", err, tt.want)
			}
		})
	}
}

func TestValidateStopAfter(t *testing.T) {
	tests := []struct {
		name string
		v    Duration
		want string // "" for valid
	}{
		{"default", 0, ""},
		{"equal to lost_after", Duration(10e9), ""},
		{"longer", Duration(60e9), ""},
		{"shorter than lost_after", Duration(5e9), "shorter than orchestrator.lost_after"},
		{"negative", Duration(-1e9), "want zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.Orchestrator.LostAfter = Duration(10e9)
			cfg.Orchestrator.StopAfter = tt.v
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "orchestrator.stop_after") || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an orchestrator.stop_after error with %q", err, tt.want)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9999", true}, {"[::1]:0", true}, {"localhost:80", true}, {"127.0.0.2:1", true},
		{"0.0.0.0:9999", false}, {"10.0.0.1:1", false}, {"[::]:1", false}, {":9999", false},
		{"example.com:1", false}, {"127.0.0.1", false}, {"127.0.0.1:99999", false},
	}
	for _, tt := range tests {
		if err := CheckLoopback(tt.addr); (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "p2p:\n  listn: []\n", "field listn not found"},
		{"bad type", "p2p:\n  conn_low: many\n", "cannot unmarshal"},
		{"bad size", "p2p:\n  max_memory: 4 GB\n", "not a size"},
		{"bad duration", "actor:\n  default_timeout: soon\n", "not a duration"},
		{"not yaml", "p2p: [\n", "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			os.WriteFile(filepath.Join(home, FileName), []byte(tt.yaml), 0o600)
			_, err := Load(Source{Home: home})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

func TestSaveRoundTrip(t *testing.T) {
	home := t.TempDir()
	cfg := Default()
	cfg.API.Listen = "127.0.0.1:1234"
	cfg.Actor.DefaultTimeout = Duration(5 * time.Second)
	if err := Save(home, cfg); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(home, FileName))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v", st.Mode().Perm())
	}
	got, err := ReadFile(home)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(cfg) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, cfg)
	}
}

func TestEnvErrorNamesVariable(t *testing.T) {
	_, err := Load(Source{Env: []string{"DMS_P2P_CONN_LOW=abc"}})
	if err == nil || !strings.Contains(err.Error(), "DMS_P2P_CONN_LOW") {
		t.Fatalf("Load = %v, want error naming DMS_P2P_CONN_LOW", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("p2p:\n  listen: [/ip4/0.0.0.0/tcp/1]\n"))
	f.Add([]byte("actor:\n  max_envelope: 1MiB\n  default_timeout: 1s\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if err := Decode(data, &cfg); err != nil {
			return
		}
		_ = cfg.Validate()
		if _, err := Encode(cfg); err != nil {
			t.Fatalf("Encode after a successful Decode: %v", err)
		}
	})
}

// TestDocs keeps docs/config.md in sync with the Go tree.
func TestDocs(t *testing.T) {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from internal/config by `go test ./internal/config -rewrite`; do not edit.\n\n")
	b.WriteString("The file is `<home>/config.yaml`. Each key can be overridden by an environment variable\n")
	b.WriteString("(`DMS_` + the key in upper case, dots as underscores) and some by flags of `dms run`.\n")
	b.WriteString("Precedence: defaults < file < environment < flags. `dms config show` prints the effective values;\n")
	b.WriteString("`dms config set KEY VALUE` edits the file (lists are comma-separated).\n\n")
	b.WriteString("| key | type | default | environment | meaning |\n|---|---|---|---|---|\n")
	for _, f := range Fields() {
		def := f.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | `%s` | %s |\n", f.Key, f.Type, def, EnvName(f.Key), f.Doc)
	}
	path := filepath.Join("..", "..", "docs", "config.md")
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || string(got) != b.String() {
		t.Fatalf("docs/config.md is out of date: run go test ./internal/config -rewrite")
	}
}

func TestValidateReservationBounds(t *testing.T) {
	tests := []struct {
		name  string
		count int
		share float64
		want  string // "" for valid
	}{
		{"defaults", 8, 0.5, ""},
		{"one, all of it", 1, 1, ""},
		{"no reservation", 0, 0.5, "orchestrator.reservations_per_peer"},
		{"negative count", -1, 0.5, "orchestrator.reservations_per_peer"},
		{"huge count", 10001, 0.5, "orchestrator.reservations_per_peer"},
		{"zero share", 8, 0, "orchestrator.reserved_share_per_peer"},
		{"more than all", 8, 1.5, "orchestrator.reserved_share_per_peer"},
		{"negative share", 8, -0.1, "orchestrator.reserved_share_per_peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.Orchestrator.ReservationsPerPeer, cfg.Orchestrator.ReservedSharePerPeer = tt.count, tt.share
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestValidateSubnet(t *testing.T) {
	tests := []struct {
		name, pool string
		bits       int
		key, want  string // "" for valid
	}{
		{"default", "10.77.0.0/16", 24, "", ""},
		{"one block", "10.1.2.0/24", 24, "", ""},
		{"smallest blocks", "192.168.50.0/24", 30, "", ""},
		{"not a prefix", "10.77.0.0", 24, "subnet.pool", "not a CIDR prefix"},
		{"garbage", "ten", 24, "subnet.pool", "not a CIDR prefix"},
		{"ipv6", "fd00::/64", 24, "subnet.pool", "not IPv4"},
		{"host bits", "10.77.1.0/16", 24, "subnet.pool", "did you mean 10.77.0.0/16"},
		{"the DNS address", "169.254.0.0/16", 24, "subnet.pool", "contains 169.254.53.53, the subnets' DNS address"},
		{"bits too large", "10.77.0.0/16", 31, "subnet.bits", "want 16 (the length of subnet.pool 10.77.0.0/16) to 30"},
		{"bits shorter than the pool", "10.77.0.0/16", 8, "subnet.bits", "want 16"},
		{"bits zero", "10.77.0.0/16", 0, "subnet.bits", "0: want 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.Subnet = Subnet{Pool: tt.pool, Bits: tt.bits}
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.key+": ") || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want a %s error with %q", err, tt.key, tt.want)
			}
		})
	}
	// From the environment, as dms run loads it.
	cfg, err := Load(Source{Home: t.TempDir(), Env: []string{"DMS_SUBNET_POOL=fd00::/8", "DMS_SUBNET_BITS=20"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Subnet.Bits != 20 {
		t.Fatalf("subnet.bits = %d, want 20", cfg.Subnet.Bits)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "subnet.pool: fd00::/8 is not IPv4") {
		t.Fatalf("Validate() = %v, want subnet.pool refused", err)
	}
}

func TestSubnetDefaultsMatchPackageSubnet(t *testing.T) {
	if defaultSubnetPool != subnet.DefaultPool.String() || defaultSubnetBits != subnet.DefaultBits {
		t.Fatalf("config's subnet defaults %s, /%d; package subnet's %s, /%d", defaultSubnetPool, defaultSubnetBits, subnet.DefaultPool, subnet.DefaultBits)
	}
	if subnetResolver != subnet.Resolver {
		t.Fatalf("config's subnet DNS address %s; package subnet's %s", subnetResolver, subnet.Resolver)
	}
}

func TestValidateContractInterval(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string
		want string // "" for valid
	}{
		{"default", "", ""},
		{"devnet", "1s", ""},
		{"a day", "24h", ""},
		{"too short", "500ms", "contract.interval: 500ms: want 1s to 24h"},
		{"zero", "0s", "contract.interval: 0s: want 1s to 24h"},
		{"too long", "25h", "contract.interval: 25h0m0s: want 1s to 24h"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			if tt.env != "" {
				env = []string{"DMS_CONTRACT_INTERVAL=" + tt.env}
			}
			cfg, err := Load(Source{Home: t.TempDir(), Env: env})
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
