package acceptance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cucumber/godog"
)

// stepSets are the step definitions of the suite, one function per steps
// file (say what it covers in a comment above it). A new feature adds its
// function here: one line.
var stepSets = []func(*godog.ScenarioContext){
	// steps_common_test.go: homes, nodes, commands and their output, files, trust, tokens
	commonSteps,
	// steps_actors_test.go: envelopes replayed on the wire or through the API; broadcasts
	actorSteps,
	dispatchSteps,
	// steps_api_test.go: REST calls with and without the token
	apiSteps,
	// steps_deploy_test.go: providers and deployments (orchestration, executors, supervision)
	deploySteps,
	// steps_resources_test.go: onboarding, benchmark scores
	resourceSteps,
	// steps_p2p_test.go: connections
	p2pSteps,
	execSteps,          // steps_exec_test.go: commands with input (exec -i), log output (timestamps, line counts)
	featureenvSteps,    // steps_featureenv_test.go: nodes in Docker containers, in regions (e2e/featureenv)
	truthSteps,         // steps_truth_test.go: warnings of dms validate, the hint for a missing executor
	translateSteps,     // steps_translate_test.go: what dms translate wrote, and what it did not
	planSteps,          // steps_plan_test.go: dms plan and dms nodes
	idSteps,            // steps_ids_test.go: deployment IDs by prefix (CLI, REST), -o yaml
	msgSteps,           // steps_msgs_test.go: a command run with a given passphrase; an error said once
	signalSteps,        // steps_signals_test.go: a command in the background, sent SIGINT or SIGTERM
	vmExecSteps,        // steps_vmexec_test.go: a VM job with the kernel's modules, for exec
	healSteps,          // steps_heal_test.go: providers that die or freeze, redeploys, the timeline, standby orchestrators
	storageSteps,       // steps_storage_test.go: an S3 server and its buckets, a web server, secrets, volumes' results
	subnetSteps,        // steps_subnet_test.go: deployments on subnets, docker allocations in the feature environment
	contractSteps,      // steps_contracts_test.go: prices, contracts and their chains on each side, ledgers, verify
	observabilitySteps, // steps_observability_test.go: Jaeger, Prometheus and ZincSearch; traces, metrics and logs found there
}

// TestAcceptance runs the feature files with godog, prints the table of
// verdicts per feature and writes the reports. Environment:
//
//	DMS_BIN                  the dms binary to test (default: built from this checkout)
//	DMS_REPORTS              where reports go (default: build/reports at the module root)
//	DMS_ACCEPTANCE_FEATURES  comma-separated feature names to run (default: all)
//	DMS_ACCEPTANCE_TAGS      a godog tag expression, e.g. "~@docker && ~@vm"
func TestAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("the acceptance suite starts real nodes: not in -short")
	}
	reports := os.Getenv("DMS_REPORTS")
	if reports == "" {
		reports = filepath.Join(moduleRoot(), "build", "reports")
	}
	if err := os.MkdirAll(reports, 0o755); err != nil {
		t.Fatal(err)
	}
	paths, err := featurePaths(os.Getenv("DMS_ACCEPTANCE_FEATURES"))
	if err != nil {
		t.Fatal(err)
	}
	xmlReport := filepath.Join(reports, "acceptance.xml")
	jsonReport := filepath.Join(reports, "acceptance.json")
	// godog writes its report to a file of this run (another run may be
	// writing the shared one); it is copied to the reports afterwards.
	cukeReport := filepath.Join(t.TempDir(), "cucumber.json")

	r := newSuiteRun(t, os.Stdout)
	status := godog.TestSuite{
		Name: "acceptance",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			r.hooks(sc)
			for _, register := range stepSets {
				register(sc)
			}
			// Last, so it matches only steps nothing else defines.
			sc.Step(`^(.*)$`, undefinedStep)
		},
		Options: &godog.Options{
			Format:      "cucumber:" + cukeReport,
			Paths:       paths,
			Tags:        os.Getenv("DMS_ACCEPTANCE_TAGS"),
			Concurrency: 1,
			// Not strict: pending steps must not fail the run. Undefined
			// steps cannot happen (undefinedStep), and a pending step in a
			// scenario not tagged @pending fails it in the table.
			Strict:         false,
			NoColors:       true,
			DefaultContext: context.Background(),
		},
	}.Run()
	if r.world != nil {
		r.leave(r.world)
	}
	r.closeFeature()

	data, err := os.ReadFile(cukeReport)
	if err != nil {
		t.Fatalf("godog wrote no cucumber report (status %d): %v", status, err)
	}
	if err := os.WriteFile(jsonReport, data, 0o644); err != nil {
		t.Error(err)
	}
	sum, err := summarize(data, r.skips, r.teardown)
	if err != nil {
		t.Fatal(err)
	}
	table := sum.table()
	fmt.Println()
	fmt.Print(table)
	if err := os.WriteFile(filepath.Join(reports, "acceptance.txt"), []byte(table), 0o644); err != nil {
		t.Error(err)
	}
	if x, err := sum.junit(); err != nil {
		t.Error(err)
	} else if err := os.WriteFile(xmlReport, x, 0o644); err != nil {
		t.Error(err)
	}
	fmt.Printf("reports: %s (the table), %s (JUnit), %s (cucumber JSON)\n", filepath.Join(reports, "acceptance.txt"), xmlReport, jsonReport)

	for _, f := range sum.features {
		t.Run(f.name, func(t *testing.T) {
			for _, p := range f.problems {
				t.Error(p)
			}
			if f.failed == 0 && f.passed == 0 {
				t.Skipf("%d pending, %d skipped", f.pending, f.skipped)
			}
		})
	}
	if status != 0 && sum.total().failed == 0 {
		t.Errorf("godog exited with status %d", status)
	}
}

// featurePaths returns the feature files to run: all, or those named.
func featurePaths(names string) ([]string, error) {
	if strings.TrimSpace(names) == "" {
		return []string{"features"}, nil
	}
	var paths []string
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSuffix(strings.TrimSpace(n), ".feature")
		if n == "" {
			continue
		}
		p := filepath.Join("features", n+".feature")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("DMS_ACCEPTANCE_FEATURES: no feature %q (%v)", n, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// undefinedStep matches every step no definition matches. In a scenario
// tagged @pending no step runs; anywhere else an undefined step is an
// error of the suite.
func undefinedStep(text string) error {
	return fmt.Errorf("no step definition matches %q: define it in a steps_*_test.go file registered in stepSets, or tag the scenario @pending", text)
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
