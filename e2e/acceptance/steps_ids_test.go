package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/cucumber/godog"
	"sigs.k8s.io/yaml"
)

// Steps of deployment IDs by prefix (CLI and REST) and of -o yaml. In a
// step, <prefix> stands for the first N characters of the scenario's
// deployment ID, N given by the step.

// withPrefix replaces <prefix> in s by the first n characters of the
// scenario's deployment ID.
func (w *World) withPrefix(s, n string) string {
	k, err := strconv.Atoi(n)
	if err != nil {
		w.T.Fatal(err)
	}
	id := w.expand("<deployment>")
	if k > len(id) {
		w.T.Fatalf("the deployment ID %s has fewer than %d characters", id, k)
	}
	return strings.ReplaceAll(s, "<prefix>", id[:k])
}

func idSteps(sc *godog.ScenarioContext) {
	sc.Step("^([a-z]+) runs `dms (.+)` with <prefix> the first (\\d+) characters of the deployment ID$", func(ctx context.Context, name, line, n string) error {
		w := worldOf(ctx)
		w.run(name, w.withPrefix(line, n))
		return nil
	})
	sc.Step(`^a program calls GET (\S+) on ([a-z]+)'s API with <prefix> the first (\d+) characters of the deployment ID$`, func(ctx context.Context, path, name, n string) error {
		w := worldOf(ctx)
		path = w.withPrefix(path, n)
		addr, token := w.apiOf(name)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		w.vals["http"] = httpAnswer{resp.StatusCode, string(body)}
		return nil
	})
	sc.Step("^the output is the YAML form of ([a-z]+)'s `dms -o json (.+)`$", func(ctx context.Context, name, line string) error {
		w := worldOf(ctx)
		ys := w.last().Stdout
		if t := strings.TrimSpace(ys); t == "" || strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			return fmt.Errorf("stdout is not YAML: %s", w.lastString())
		}
		fromYAML, err := yaml.YAMLToJSON([]byte(ys))
		if err != nil {
			return fmt.Errorf("stdout is not YAML (%v): %s", err, w.lastString())
		}
		yamlCmd := w.lastString()
		r := w.run(name, "-o json "+line)
		if r.Code != 0 {
			return fmt.Errorf("want success: %s", w.lastString())
		}
		var a, b any
		if err := json.Unmarshal(fromYAML, &a); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(r.Stdout), &b); err != nil {
			return fmt.Errorf("-o json is not JSON: %s", w.lastString())
		}
		if !reflect.DeepEqual(a, b) {
			return fmt.Errorf("YAML and JSON differ:\n%s\n%s", yamlCmd, w.lastString())
		}
		return nil
	})
}
