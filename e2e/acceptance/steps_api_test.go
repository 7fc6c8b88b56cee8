package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/identity"
)

// Steps of the local REST API, called as a program would: plain HTTP with
// or without the token of <home>/api.token, and the public Go client.

// httpAnswer is the last answer a program got from an API.
type httpAnswer struct {
	status int
	body   string
}

// apiOf returns the address and token of name's running node's API.
func (w *World) apiOf(name string) (addr, token string) {
	n := netOf(w)
	n.node(w.T, name)
	dir := n.home(name).Dir
	a, err := os.ReadFile(filepath.Join(dir, "api.addr"))
	if err != nil {
		w.T.Fatalf("%s's API address: %v", name, err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "api.token"))
	if err != nil {
		w.T.Fatalf("%s's API token: %v", name, err)
	}
	return strings.TrimSpace(string(a)), strings.TrimSpace(string(tok))
}

// client returns a public API client of name's node.
func (w *World) client(name string) *api.Client {
	addr, token := w.apiOf(name)
	c, err := api.NewClient(api.ClientConfig{Addr: addr, Token: token})
	if err != nil {
		w.T.Fatal(err)
	}
	return c
}

// userKey loads the user key of name's home.
func (w *World) userKey(name string) *identity.Key {
	ks := identity.OpenKeystore(filepath.Join(netOf(w).home(name).Dir, "keys"), identity.DefaultKDF)
	k, err := ks.Load("user", []byte(e2etest.Passphrase))
	if err != nil {
		w.T.Fatalf("load %s's user key: %v", name, err)
	}
	return k
}

// invocation signs, with key, an invocation of behavior addressed to
// target's node, relayed as an api.ActorRequest by via's node (it is bound
// to that node, with no payload).
func (w *World) invocation(key *identity.Key, target, via, behavior string) api.ActorRequest {
	did := identity.DID(netOf(w).id(w.T, target, "did"))
	peer := netOf(w).id(w.T, target, "peer")
	relay := netOf(w).id(w.T, via, "peer")
	inv, err := cap.Invoke(key, cap.InvocationParams{Audience: did, Command: behavior, Expiry: time.Now().Add(time.Minute), Args: cap.Bind(relay, nil).Args()})
	if err != nil {
		w.T.Fatal(err)
	}
	return api.ActorRequest{To: api.Handle{DID: string(did), Host: peer, Inbox: "root"}, Behavior: behavior,
		From: string(key.DID()), Invocation: cap.BundleOf(inv, nil), TimeoutMS: 10_000}
}

func apiSteps(sc *godog.ScenarioContext) {
	sc.Step(`^a program calls (GET|POST) (\S+) on ([a-z]+)'s API (without a token|with the token "[^"]*"|with the node's token)$`, func(ctx context.Context, method, path, name, how string) error {
		w := worldOf(ctx)
		addr, token := w.apiOf(name)
		switch {
		case how == "without a token":
			token = ""
		case strings.HasPrefix(how, "with the token "):
			token = strings.Trim(strings.TrimPrefix(how, "with the token "), `"`)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		w.vals["http"] = httpAnswer{resp.StatusCode, string(body)}
		return nil
	})
	sc.Step(`^a program invokes "([^"]+)" on ([a-z]+) through ([a-z]+)'s API, signed by a key ([a-z]+) does not trust$`, func(ctx context.Context, behavior, target, via, _ string) error {
		w := worldOf(ctx)
		key, err := identity.NewKey()
		if err != nil {
			return err
		}
		addr, token := w.apiOf(via)
		body, err := json.Marshal(w.invocation(key, target, via, behavior))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/actor/invoke", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		w.vals["http"] = httpAnswer{resp.StatusCode, string(data)}
		return nil
	})
	sc.Step(`^the API answers (\d+)(?: with the code "([^"]+)")?$`, func(ctx context.Context, status int, code string) error {
		w := worldOf(ctx)
		a, ok := w.vals["http"].(httpAnswer)
		if !ok {
			return errors.New("no program called the API in this scenario")
		}
		if a.status != status {
			return fmt.Errorf("API answered %d, want %d: %s", a.status, status, a.body)
		}
		if code != "" {
			var e api.ErrorResponse
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Code != code {
				return fmt.Errorf("API answered %s, want the error code %q", a.body, code)
			}
		}
		return nil
	})
	sc.Step(`^the answer contains "(.*)"$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		a, _ := w.vals["http"].(httpAnswer)
		if want = w.expand(unquote(want)); !strings.Contains(a.body, want) {
			return fmt.Errorf("the API's answer lacks %q: %d %s", want, a.status, a.body)
		}
		return nil
	})
}
