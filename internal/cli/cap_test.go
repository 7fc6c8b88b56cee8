package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/node"
	"github.com/dmsnet/dms/internal/store"
)

// userDID returns the user DID of a home.
func userDID(t *testing.T, home string) string {
	t.Helper()
	code, out, stderr := run(t, "--home", home, "key", "did", "user")
	if code != 0 {
		t.Fatalf("key did: %s", stderr)
	}
	return strings.TrimSpace(out)
}

// mustRun runs a command that must succeed and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := run(t, args...)
	if code != 0 {
		t.Fatalf("dms %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return out
}

// TestCapAcrossHomes is the acceptance scenario: A's user grants C a token
// for /dms/node/peers; B anchors A's user; B accepts the token for
// /dms/node/peers/list and refuses it for /dms/node/deployment/new.
func TestCapAcrossHomes(t *testing.T) {
	homeA, homeB, homeC := newHome(t), newHome(t), newHome(t)
	a, c := userDID(t, homeA), userDID(t, homeC)
	tok := filepath.Join(t.TempDir(), "peers.tok")

	out := mustRun(t, "--home", homeA, "cap", "grant", "--to", c, "--cmd", "/dms/node/peers", "-o", tok)
	if !strings.Contains(out, "wrote "+tok) {
		t.Fatalf("grant -o FILE printed %q", out)
	}
	// Before B trusts A.
	code, _, stderr := run(t, "--home", homeB, "cap", "verify", "--cmd", "/dms/node/peers/list", tok)
	if code != 1 || !strings.HasPrefix(stderr, "denied: untrusted-root: token bafy") {
		t.Fatalf("verify before anchoring: exit %d %q, want untrusted-root", code, stderr)
	}
	mustRun(t, "--home", homeB, "cap", "anchor", "--root", a)

	if out := mustRun(t, "--home", homeB, "cap", "verify", "--cmd", "/dms/node/peers/list", tok); !strings.HasPrefix(out, "ok: "+c) {
		t.Fatalf("verify = %q", out)
	}
	code, out, stderr = run(t, "--home", homeB, "cap", "verify", "--cmd", "/dms/node/deployment/new", tok)
	if code != 1 || out != "" || !strings.HasPrefix(stderr, "denied: command-escalation: token bafy") ||
		!strings.Contains(stderr, "/dms/node/deployment/new is not under /dms/node/peers") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("verify escalation: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// C re-delegates a narrower part to B's user; widening is refused.
	bUser := userDID(t, homeB)
	tok2 := filepath.Join(t.TempDir(), "list.tok")
	code, _, stderr = run(t, "--home", homeC, "cap", "delegate", "--from", tok, "--to", bUser, "--cmd", "/dms/node", "-o", tok2)
	if code != 1 || !strings.HasPrefix(stderr, "denied: command-escalation:") {
		t.Fatalf("widening delegate: exit %d %q", code, stderr)
	}
	code, _, stderr = run(t, "--home", homeC, "cap", "delegate", "--from", tok, "--to", bUser, "--cmd", "/dms/node/peers/list", "--expiry", "48h", "-o", tok2)
	if code != 1 || !strings.HasPrefix(stderr, "denied: expiry-escalation:") {
		t.Fatalf("longer delegate: exit %d %q", code, stderr)
	}
	code, _, stderr = run(t, "--home", homeA, "cap", "delegate", "--from", tok, "--to", bUser, "--cmd", "/dms/node/peers/list", "-o", tok2)
	if code != 1 || !strings.HasPrefix(stderr, "denied: audience:") {
		t.Fatalf("delegate by a non-holder: exit %d %q", code, stderr)
	}
	mustRun(t, "--home", homeC, "cap", "delegate", "--from", tok, "--to", bUser, "--cmd", "/dms/node/peers/list", "--out", tok2)
	var v verifyOutput
	if err := json.Unmarshal([]byte(mustRun(t, "--home", homeB, "-o", "json", "cap", "verify", "--cmd", "/dms/node/peers/list", tok2)), &v); err != nil || !v.OK || v.Depth != 2 {
		t.Fatalf("verify re-delegation: %+v %v", v, err)
	}

	// C cannot revoke A's grant; A can, and B learns it by importing the
	// revocation.
	code, _, stderr = run(t, "--home", homeC, "cap", "revoke", tok)
	if code != 1 || !strings.Contains(stderr, "neither its issuer nor the issuer of one of its ancestors") {
		t.Fatalf("revoke by the audience: exit %d %q", code, stderr)
	}
	revFile := filepath.Join(t.TempDir(), "rev.json")
	if err := os.WriteFile(revFile, []byte(mustRun(t, "--home", homeA, "-o", "json", "cap", "revoke", tok)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--home", homeB, "cap", "import", revFile)
	code, _, stderr = run(t, "--home", homeB, "cap", "verify", "--cmd", "/dms/node/peers/list", tok2)
	if code != 1 || !strings.HasPrefix(stderr, "denied: revoked: token bafy") {
		t.Fatalf("verify after revocation: exit %d %q", code, stderr)
	}
}

func TestCapCommands(t *testing.T) {
	home, other := newHome(t), newHome(t)
	me, them := userDID(t, home), userDID(t, other)

	// dms init trusts the home's user for /dms (once init calls
	// capDefaults; until then the test adds the anchor itself).
	var l api.CapListing
	if err := json.Unmarshal([]byte(mustRun(t, "--home", home, "-o", "json", "cap", "list")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Anchors) == 0 {
		mustRun(t, "--home", home, "cap", "anchor", "--root", me)
	} else if len(l.Anchors) != 1 || string(l.Anchors[0].Root) != me || l.Anchors[0].Cmd != "/dms" {
		t.Fatalf("anchors of a new home = %v, want %s for /dms", l.Anchors, me)
	}

	// grant without -o prints the token; -o json prints its description.
	text := strings.TrimSpace(mustRun(t, "--home", home, "cap", "grant", "--to", them, "--cmd", "/dms/node/peers", "--policy", `[["==", ".scope", "lan"]]`))
	if !strings.HasPrefix(text, "B") || strings.Contains(text, "\n") {
		t.Fatalf("grant printed %q, want one line of token text", text)
	}
	var g tokenOutput
	if err := json.Unmarshal([]byte(mustRun(t, "--home", home, "-o", "json", "cap", "grant", "--to", them, "--cmd", "/dms/x", "--expiry", "7d")), &g); err != nil {
		t.Fatal(err)
	}
	if g.Cmd != "/dms/x" || string(g.Audience) != them || g.Depth != 1 || g.Token == "" {
		t.Fatalf("grant -o json = %+v", g)
	}
	tok := filepath.Join(t.TempDir(), "t.tok")
	os.WriteFile(tok, []byte(text+"\n"), 0o600)

	tests := []struct {
		name string
		args []string
		code int
		want string // substring of stdout (code 0) or stderr
	}{
		{"verify with matching args", []string{"cap", "verify", "--cmd", "/dms/node/peers/list", "--args", `{"scope": "lan"}`, tok}, 0, "ok: "},
		{"verify without args fails the policy", []string{"cap", "verify", "--cmd", "/dms/node/peers/list", tok}, 1, "denied: policy: token bafy"},
		{"verify bad args", []string{"cap", "verify", "--cmd", "/dms/x", "--args", "[1]", tok}, 2, "--args"},
		{"verify missing file", []string{"cap", "verify", "--cmd", "/dms/x", "nope.tok"}, 1, "token file"},
		{"verify needs --cmd", []string{"cap", "verify", tok}, 2, "--cmd CMD is required"},
		{"grant needs --to", []string{"cap", "grant", "--cmd", "/dms"}, 2, "--to DID and --cmd CMD are required"},
		{"grant bad DID", []string{"cap", "grant", "--to", "did:key:zzz", "--cmd", "/dms"}, 2, "--to"},
		{"grant bad command", []string{"cap", "grant", "--to", them, "--cmd", "dms"}, 2, "--cmd"},
		{"grant bad policy", []string{"cap", "grant", "--to", them, "--cmd", "/dms", "--policy", "[[=="}, 2, "--policy"},
		{"grant bad expiry", []string{"cap", "grant", "--to", them, "--cmd", "/dms", "--expiry", "-1h"}, 2, "--expiry"},
		{"grant -o and --out differ", []string{"cap", "grant", "--to", them, "--cmd", "/dms", "-o", "a.tok", "--out", "b.tok"}, 2, "give the token file once"},
		{"-o FILE elsewhere is still refused", []string{"cap", "list", "-o", "x.tok"}, 2, `-o "x.tok": want table, json or yaml`},
		{"anchor needs --root", []string{"cap", "anchor"}, 2, "--root DID is required"},
		{"anchor bad prefix", []string{"cap", "anchor", "--root", them, "--cmd", "/dms/"}, 2, "must not end with /"},
		{"anchor", []string{"cap", "anchor", "--root", them, "--cmd", "/dms/node/peers"}, 0, "trusted " + them + " for /dms/node/peers"},
		{"remove anchor", []string{"cap", "anchor", "--root", them, "--cmd", "/dms/node/peers", "--remove"}, 0, "no longer trusted"},
		{"remove missing anchor", []string{"cap", "anchor", "--root", them, "--cmd", "/dms/node/peers", "--remove"}, 1, "no such anchor"},
		{"import", []string{"cap", "import", tok}, 0, "imported bafy"},
		{"import garbage", []string{"cap", "import", "/etc/hostname"}, 1, "denied: malformed"},
		{"revoke unknown", []string{"cap", "revoke", "bafynothing"}, 1, "neither a token file nor a known token CID"},
		{"revoke by CID", []string{"cap", "revoke", g.CID}, 0, "revoked " + g.CID},
		{"list shows revoked", []string{"cap", "list"}, 0, "revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, append([]string{"--home", home}, tt.args...)...)
			got := out
			if tt.code != 0 {
				got = stderr
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q; want %q", code, tt.code, out, stderr, tt.want)
			}
		})
	}
}

func TestCapStoreInUse(t *testing.T) {
	home := newHome(t)
	db, err := store.Open(filepath.Join(home, node.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, _, stderr := run(t, "--home", home, "cap", "list")
	want := "store " + filepath.Join(home, "data", "dms.db") + " is in use by another process (is `dms run` running?)\n"
	if code != 1 || stderr != want {
		t.Fatalf("cap list with the store held: exit %d %q, want %q", code, stderr, want)
	}
}
