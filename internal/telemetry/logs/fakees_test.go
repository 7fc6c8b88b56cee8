package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeES is a test aid: an Elasticsearch _bulk endpoint that keeps
// documents by id and answers as a test programs it.
type fakeES struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	docs     map[string]map[string]any // by _id
	order    []string                  // ids in the order first created
	requests int
	conflict int // creates of an id already there (answered 409)
	// down answers every request 503; status, when set, answers the
	// whole request with it.
	down   bool
	status int
	// item, when set, gives an item's status by its document (0: normal).
	item func(doc map[string]any) int
	// lie stores the documents but answers 503 (a response lost on its
	// way back).
	lie int
	// user and pass, when set, are required.
	user, pass string
}

func newFakeES(t *testing.T) *fakeES {
	f := &fakeES{t: t, docs: map[string]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeES) set(fn func(f *fakeES)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.URL.Path != "/es/_bulk" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if f.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
	}
	if f.down {
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if f.status != 0 {
		http.Error(w, `{"error":"programmed"}`, f.status)
		return
	}
	type result struct {
		Index  string `json:"_index"`
		ID     string `json:"_id"`
		Status int    `json:"status"`
		Error  any    `json:"error,omitempty"`
	}
	var items []map[string]result
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var meta map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &meta); err != nil {
			f.t.Errorf("fake es: action line %q: %v", sc.Text(), err)
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		act, ok := meta["create"]
		if !ok || act.ID == "" || act.Index == "" {
			f.t.Errorf("fake es: want a create action with _index and _id, got %q", sc.Text())
		}
		if !sc.Scan() {
			http.Error(w, "missing document", http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			f.t.Errorf("fake es: document %q: %v", sc.Text(), err)
		}
		if k := duplicateKey(sc.Bytes()); k != "" {
			f.t.Errorf("fake es: document %s has the key %q twice (Elasticsearch refuses it)", sc.Text(), k)
		}
		res := result{Index: act.Index, ID: act.ID, Status: 201}
		st := 0
		if f.item != nil {
			st = f.item(doc)
		}
		switch {
		case st != 0:
			res.Status = st
			res.Error = map[string]string{"type": "programmed", "reason": fmt.Sprint(st)}
		case f.docs[act.ID] != nil:
			f.conflict++
			res.Status = 409
			res.Error = map[string]string{"type": "version_conflict_engine_exception", "reason": "document already exists"}
		default:
			f.docs[act.ID] = doc
			f.order = append(f.order, act.ID)
		}
		items = append(items, map[string]result{"create": res})
	}
	if f.lie > 0 {
		f.lie--
		http.Error(w, `{"error":"lost answer"}`, http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": true, "items": items})
}

// url is the base URL the sink is given.
func (f *fakeES) url() string { return f.srv.URL + "/es" }

// messages returns the stored documents' messages, in creation order.
func (f *fakeES) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range f.order {
		out = append(out, fmt.Sprint(f.docs[id]["message"]))
	}
	return out
}

func (f *fakeES) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.docs)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// msgSet checks that got holds each of want exactly once.
func exactlyOnce(t *testing.T, got []string, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range got {
		seen[m]++
	}
	var missing, dup []string
	for _, m := range want {
		switch seen[m] {
		case 0:
			missing = append(missing, m)
		case 1:
		default:
			dup = append(dup, m)
		}
	}
	if len(missing) > 0 || len(dup) > 0 || len(got) != len(want) {
		t.Fatalf("stored %d documents, want %d exactly once: missing %s; duplicated %s",
			len(got), len(want), trunc(missing), trunc(dup))
	}
}

func trunc(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ",") + fmt.Sprintf(",... (%d)", len(s))
	}
	return strings.Join(s, ",")
}

// duplicateKey returns a top-level key doc has twice, or "".
func duplicateKey(doc []byte) string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := t.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}
