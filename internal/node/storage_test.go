package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "access_key_id=AKID\nsecret_access_key=topsecret\n")
	bad := write("bad", "access_key_id=AKID\nsecret=topsecret\n")
	half := write("half", "access_key_id=AKID\n")
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // in the error; none: no error
	}{
		{"none", nil, nil},
		{"good", map[string]string{"ops": good}, nil},
		{"missing file", map[string]string{"ops": filepath.Join(dir, "absent")}, []string{"storage.credentials.ops", "absent", "no such file"}},
		{"bad file", map[string]string{"ops": bad}, []string{"storage.credentials.ops", bad, `unknown key "secret"`}},
		{"all reported", map[string]string{"a": bad, "b": half, "c": good}, []string{"storage.credentials.a", "storage.credentials.b", "secret_access_key is missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadCredentials(tc.files)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("loadCredentials = %v", err)
				}
				if len(got) != len(tc.files) {
					t.Fatalf("loaded %d, want %d", len(got), len(tc.files))
				}
				for _, c := range got {
					if c.AccessKeyID != "AKID" || c.SecretAccessKey != "topsecret" {
						t.Errorf("credentials = %+v", c)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("loadCredentials: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error %q quotes a key", err)
			}
		})
	}
}
