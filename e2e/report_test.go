package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	"github.com/dmsnet/dms/internal/e2etest"
)

// The attack suite's summary table: TestAttacks and the attacks that need
// a workload of their own (jobs, a provider killed during a shutdown)
// each record their rows; TestMain writes the table once every test has
// run, failures included, to $DMS_REPORTS (else build/reports at the
// module root) as attacks.txt and attacks.json.
var attackRows struct {
	sync.Mutex
	rows []attackRow
}

// recordAttack adds a row to the summary table.
func recordAttack(r attackRow) {
	attackRows.Lock()
	attackRows.rows = append(attackRows.rows, r)
	attackRows.Unlock()
}

// attackCase runs one attack as a subtest-like step of t and records its
// row: held when run returns no error, else FAIL with the error.
func attackCase(t *testing.T, name, defect, expect string, run func() (detail string, err error)) {
	t.Helper()
	row := attackRow{Attack: name, Defect: defect, Expect: expect, Result: "FAIL", Detail: "stopped early: see the test log"}
	defer func() { recordAttack(row) }()
	detail, err := run()
	row.Detail = detail
	if err != nil {
		row.Detail = clip(strings.TrimSpace(detail+" "+err.Error()), 300)
		t.Fatal(err)
	}
	row.Result = "held"
	t.Logf("%s: %s", name, detail)
}

func TestMain(m *testing.M) {
	code := m.Run()
	attackRows.Lock()
	rows := attackRows.rows
	attackRows.Unlock()
	if len(rows) > 0 {
		if err := writeAttackReport(rows); err != nil {
			fmt.Fprintln(os.Stderr, "attack report:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// writeAttackReport writes the summary table.
func writeAttackReport(rows []attackRow) error {
	dir := os.Getenv("DMS_REPORTS")
	if dir == "" {
		dir = filepath.Join(e2etest.ModuleRoot(), "build", "reports")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tDEFECT\tEXPECTED\tRESULT\tDETAIL")
	for _, r := range rows {
		d := r.Defect
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Attack, d, r.Expect, r.Result, strings.ReplaceAll(r.Detail, "\n", " "))
	}
	tw.Flush()
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"attacks.txt": []byte(b.String()), "attacks.json": append(js, '\n')} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("attack report in %s:\n%s", dir, b.String())
	return nil
}
