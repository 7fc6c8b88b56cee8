package acceptance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/e2etest/jaegerfix"
	"github.com/dmsnet/dms/internal/telemetry/logs/zinctest"
)

// Steps of observability (docs/observability.md): a real Jaeger and a real
// ZincSearch for the feature, a real Prometheus per scenario (it scrapes
// nodes that run), the nodes pointed at them through their environment,
// and what each server then holds.

// logIndex is the index the feature's nodes write their records to.
const logIndex = "dms-acceptance"

type telemetryServers struct {
	jaeger *jaegerfix.Server
	zinc   *zinctest.Server
}

func serversOf(w *World) *telemetryServers {
	s, ok := w.Feature.vals["telemetry"].(*telemetryServers)
	if !ok {
		w.T.Fatal("no telemetry servers were started in this feature")
	}
	return s
}

// prometheusOf returns the scenario's Prometheus.
func prometheusOf(w *World) *e2etest.Prometheus {
	p, ok := w.vals["prometheus"].(*e2etest.Prometheus)
	if !ok {
		w.T.Fatal("no Prometheus was started in this scenario")
	}
	return p
}

// metricsOf scrapes name's /metrics with its API token and returns the
// sum of the samples of metric whose labels include every label given.
func (w *World) metricsOf(name, metric string, labels ...string) (float64, error) {
	tg := e2etest.HomeTarget(w.T, netOf(w).home(name), name)
	req, _ := http.NewRequest(http.MethodGet, "http://"+tg.Addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET /metrics of %s: %s: %s", name, resp.Status, b)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// deploymentTrace is the trace of the scenario's deployment as name's node
// gathers it (dms deployment trace -o json).
func (w *World) deploymentTrace(name string) (api.DeploymentTrace, error) {
	id, _ := w.vals["deployment"].(string)
	if id == "" {
		return api.DeploymentTrace{}, fmt.Errorf("no deployment was submitted in this scenario")
	}
	var tr api.DeploymentTrace
	r := w.home(name).Run(w.T, "deployment", "trace", id, "-o", "json")
	if r.Code != 0 {
		return tr, fmt.Errorf("dms deployment trace: %s", r)
	}
	if err := jsonInto(r.Stdout, &tr); err != nil {
		return tr, err
	}
	return tr, nil
}

// peersOfNames returns the peer IDs of the named nodes.
func (w *World) peersOfNames(list string) map[string]string {
	out := map[string]string{}
	for _, n := range splitNames(list) {
		out[netOf(w).id(w.T, n, "peer")] = n
	}
	return out
}

func observabilitySteps(sc *godog.ScenarioContext) {
	sc.Step(`^a Jaeger and an Elasticsearch-API store$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		featureValue(w.Feature, "telemetry", func(t testing.TB) *telemetryServers {
			return &telemetryServers{jaeger: jaegerfix.Start(t), zinc: zinctest.Start(t)}
		})
		return nil
	})
	sc.Step(`^the nodes `+names+` send their telemetry to them$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		s := serversOf(w)
		pw := filepath.Join(w.Feature.T.TempDir(), "es-password")
		if err := os.WriteFile(pw, []byte(s.zinc.Password), 0o600); err != nil {
			return err
		}
		for _, n := range splitNames(list) {
			if _, ok := netOf(w).homes[n]; ok {
				continue // created by an earlier scenario, with the same environment
			}
			netOf(w).home(n,
				"DMS_TELEMETRY_OTLP_ENDPOINT="+s.jaeger.OTLP,
				"DMS_TELEMETRY_ELASTICSEARCH_URL="+s.zinc.URL,
				"DMS_TELEMETRY_ELASTICSEARCH_INDEX="+logIndex,
				"DMS_TELEMETRY_ELASTICSEARCH_USERNAME="+s.zinc.User,
				"DMS_TELEMETRY_ELASTICSEARCH_PASSWORD_FILE="+pw,
				"DMS_TELEMETRY_ELASTICSEARCH_FLUSH_INTERVAL=500ms",
			)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds Jaeger holds ([a-z]+)'s trace of the deployment, with spans from `+names+`$`, func(ctx context.Context, secs, name, list string) error {
		w := worldOf(ctx)
		tr, err := w.deploymentTrace(name)
		if err != nil {
			return err
		}
		want := w.peersOfNames(list)
		var last string
		if eventually(seconds(secs), func() bool {
			got, found, err := serversOf(w).jaeger.Trace(ctx, tr.TraceID)
			switch {
			case err != nil:
				last = err.Error()
			case !found:
				last = "Jaeger does not hold trace " + tr.TraceID
			default:
				ids := got.InstanceIDs()
				var missing []string
				for p, n := range want {
					if !slices.Contains(ids, p) {
						missing = append(missing, n)
					}
				}
				if len(missing) == 0 {
					return true
				}
				last = fmt.Sprintf("trace %s in Jaeger has %d spans, none from %s", tr.TraceID, len(got.Spans), strings.Join(missing, ", "))
			}
			return false
		}) {
			return nil
		}
		return fmt.Errorf("%s", last)
	})
	sc.Step(`^`+"`dms deployment trace <deployment>`"+` on ([a-z]+) shows one trace with spans from `+names+`$`, func(ctx context.Context, name, list string) error {
		w := worldOf(ctx)
		var last error
		if eventually(30*time.Second, func() bool {
			tr, err := w.deploymentTrace(name)
			if err != nil {
				last = err
				return false
			}
			nodes := map[string]bool{}
			for _, s := range tr.Spans {
				if s.TraceID != tr.TraceID {
					last = fmt.Errorf("span %s %q is of trace %s, not %s", s.SpanID, s.Name, s.TraceID, tr.TraceID)
					return false
				}
				nodes[s.Node] = true
			}
			for p, n := range w.peersOfNames(list) {
				if !nodes[p] {
					last = fmt.Errorf("the trace %s holds %d spans, none from %s (nodes: %+v)", tr.TraceID, len(tr.Spans), n, tr.Nodes)
					return false
				}
			}
			return true
		}) {
			r := w.home(name).MustRun(w.T, "deployment", "trace", w.vals["deployment"].(string))
			w.T.Log(r)
			return nil
		}
		return last
	})
	sc.Step(`^Prometheus scrapes `+names+`$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		var ts []e2etest.Target
		for _, n := range splitNames(list) {
			ts = append(ts, e2etest.HomeTarget(w.T, netOf(w).home(n), n))
		}
		w.vals["prometheus"] = e2etest.StartPrometheus(w.T, ts...)
		return nil
	})
	sc.Step(`^within (\d+) seconds Prometheus answers the query "([^"]+)" with at least (\d+)$`, func(ctx context.Context, secs, q string, min float64) error {
		w := worldOf(ctx)
		p := prometheusOf(w)
		var last string
		if eventually(seconds(secs), func() bool {
			res, err := p.Query(ctx, q)
			if err != nil {
				last = err.Error()
				return false
			}
			var sum float64
			for _, s := range res {
				sum += s.Value
			}
			last = fmt.Sprintf("the query %q gives %v", q, res)
			return len(res) > 0 && sum >= min
		}) {
			return nil
		}
		targets, _ := p.Targets(ctx)
		return fmt.Errorf("%s; targets: %s", last, targets)
	})
	sc.Step(`^([a-z]+)'s refusals coded "([a-z-]+)" are noted$`, func(ctx context.Context, name, code string) error {
		w := worldOf(ctx)
		v, err := w.metricsOf(name, "dms_refusals_total", `code="`+code+`"`)
		w.vals["refusals"] = v
		return err
	})
	sc.Step(`^([a-z]+), whom ([a-z]+) does not trust, invokes a command on [a-z]+ (\d+) times$`, func(ctx context.Context, from, to string, n int) error {
		w := worldOf(ctx)
		peer := netOf(w).id(w.T, to, "peer")
		for range n {
			r := w.home(from).Run(w.T, "invoke", "/dms/node/peers/list", "--to", peer)
			if r.Code == 0 || !strings.Contains(r.Stderr, "denied") {
				return fmt.Errorf("dms invoke was not denied: %s", r)
			}
		}
		return nil
	})
	sc.Step(`^([a-z]+)'s metrics count (\d+) more refusals coded "([a-z-]+)"$`, func(ctx context.Context, name string, n float64, code string) error {
		w := worldOf(ctx)
		before, _ := w.vals["refusals"].(float64)
		v, err := w.metricsOf(name, "dms_refusals_total", `code="`+code+`"`)
		if err != nil {
			return err
		}
		if v-before != n {
			return fmt.Errorf("%s counts %v refusals coded %q, %v before: want %v more", name, v, code, before, n)
		}
		return nil
	})
	sc.Step(`^the Elasticsearch-API store goes down$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		serversOf(w).zinc.Stop()
		w.vals["store down"] = time.Now()
		return nil
	})
	sc.Step(`^the Elasticsearch-API store comes back after (\d+) seconds down$`, func(ctx context.Context, secs string) error {
		w := worldOf(ctx)
		down, ok := w.vals["store down"].(time.Time)
		if !ok {
			return fmt.Errorf("the store did not go down in this scenario")
		}
		// The outage lasts as long as the scenario says: this is its length,
		// not a wait for something to happen.
		select {
		case <-time.After(time.Until(down.Add(seconds(secs)))):
		case <-ctx.Done():
			return ctx.Err()
		}
		serversOf(w).zinc.Restart()
		return nil
	})
	sc.Step(`^within (\d+) seconds the store holds, by the deployment's ID, records of ([a-z]+)'s node and exactly once each of the lines (.+) of "([^"]+)"$`, func(ctx context.Context, secs, name, lines, alloc string) error {
		w := worldOf(ctx)
		id, _ := w.vals["deployment"].(string)
		want := quotedList(lines)
		peer := netOf(w).id(w.T, name, "peer")
		var last string
		if eventually(seconds(secs), func() bool {
			hits := serversOf(w).zinc.Search(logIndex, map[string]any{"term": map[string]any{"deployment_id": id}})
			node := 0
			seen := map[string]int{}
			records := map[string]int{} // node records by content: a duplicate is a record sent twice
			dup := ""
			for _, h := range hits {
				src := h.Source
				if src["kind"] == "allocation" && src["allocation_name"] == alloc {
					seen[fmt.Sprint(src["message"])]++
				}
				if src["kind"] == "node" && src["node_id"] == peer {
					node++
				}
				k := fmt.Sprint(src["kind"], src["node_id"], src["@timestamp"], src["message"], src["stream"])
				if records[k]++; records[k] > 1 {
					dup = k
				}
			}
			last = fmt.Sprintf("%d records with deployment_id %s: %d from %s's node, allocation lines %v", len(hits), id, node, name, seen)
			if dup != "" {
				last += "; a record is there twice: " + dup
				return false
			}
			if node == 0 {
				return false
			}
			for _, l := range want {
				if seen[l] != 1 {
					return false
				}
			}
			return true
		}) {
			return nil
		}
		return fmt.Errorf("want each of %q once: %s", want, last)
	})
}

var quotedRE = regexp.MustCompile(`"([^"]*)"`)

// quotedList returns the quoted strings of `"a", "b" and "c"`.
func quotedList(s string) []string {
	var out []string
	for _, m := range quotedRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}
