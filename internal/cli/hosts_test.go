package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// wordpressEnsemble is what a translated wordpress+mysql looks like:
// wordpress finds its database by the allocation's name.
const wordpressEnsemble = `version: v1
allocations:
  wordpress:
    type: service
    executor: docker
    execution:
      image: wordpress:6
      env: {WORDPRESS_DB_HOST: db, WORDPRESS_DB_NAME: wp}
  db:
    type: service
    executor: docker
    execution: {image: "mysql:8", env: {MYSQL_DATABASE: wp}}
nodes:
  main: {allocations: [wordpress, db]}
`

const wordpressWarning = "warning: allocation wordpress: env WORDPRESS_DB_HOST names allocation db as a host; allocations reach each other by name only on a subnet: add `network: {subnet: true}` to the ensemble (docs/ensemble.md#networking)\n"

func TestValidateWarnsAboutHostNames(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "wp.yaml", wordpressEnsemble)
	for _, tc := range []struct {
		name           string
		args           []string
		stdout, stderr string
	}{
		{"text", []string{"validate", "-f", file}, file + ": valid (2 allocations on 1 node)\n", wordpressWarning},
		{"subnet", []string{"validate", "-f", writeFile(t, dir, "subnet.yaml", wordpressEnsemble+"network: {subnet: true}\n")},
			dir + "/subnet.yaml: valid (2 allocations on 1 node)\n", ""},
		{"no reference", []string{"validate", "-f", writeFile(t, dir, "plain.yaml", strings.Replace(wordpressEnsemble, "db, WORDPRESS_DB_NAME", "localhost, WORDPRESS_DB_NAME", 1))},
			dir + "/plain.yaml: valid (2 allocations on 1 node)\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"--home", home}, tc.args...)...)
			if code != 0 || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("dms %v = exit %d\nstdout %q\nstderr %q\nwant exit 0, stdout %q, stderr %q", tc.args, code, stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}

	code, stdout, stderr := run(t, "--home", home, "-o", "json", "validate", "-f", file)
	var res ValidateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || !res.Valid || stderr != "" {
		t.Fatalf("dms validate -o json = exit %d, %q, stderr %q (%v)", code, stdout, stderr, err)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Path != "allocations.wordpress.execution.env.WORDPRESS_DB_HOST" || res.Warnings[0].Line != 8 ||
		!strings.HasPrefix(res.Warnings[0].Msg, "env WORDPRESS_DB_HOST names allocation db as a host;") {
		t.Errorf("dms validate -o json warnings = %+v", res.Warnings)
	}
	// An invalid file has no warnings, and an empty list, not null.
	bad := writeFile(t, dir, "bad.yaml", "version: v1\nallocations: {}\n")
	_, stdout, _ = run(t, "--home", home, "-o", "json", "validate", "-f", bad)
	if !strings.Contains(stdout, `"warnings": []`) {
		t.Errorf("dms validate -o json of an invalid file = %s, want \"warnings\": []", stdout)
	}
}

// Compose services find each other by name, so a translation gets a
// subnet, where db resolves, and no warning about the name.
func TestTranslateGivesComposeASubnet(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	compose := writeFile(t, dir, "compose.yaml", `services:
  wordpress:
    image: wordpress:6
    environment: {WORDPRESS_DB_HOST: "db:3306"}
  db:
    image: mysql:8
`)
	code, stdout, stderr := run(t, "--home", home, "translate", "--from", "compose", compose)
	if code != 0 || !strings.Contains(stdout, "subnet: true") || strings.Contains(stderr, "as a host") {
		t.Errorf("dms translate = exit %d, stdout %q, stderr %q; want network.subnet and no host-name warning", code, stdout, stderr)
	}
}
