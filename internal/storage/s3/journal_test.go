package s3

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestDecodeJournal(t *testing.T) {
	tests := []struct {
		name, in, err string
	}{
		{"empty object", `{"version":1}`, ""},
		{"an upload", `{"version":1,"uploads":{"k":{"size":10,"mtime_ns":1,"sha256":"` + goodSum + `","upload_id":"u","part_size":5,"parts":{"1":"e"},"sending":{"2":true}}}}`, ""},
		{"not JSON", `{`, "bad JSON"},
		{"other version", `{"version":2}`, "version 2"},
		{"null upload", `{"version":1,"uploads":{"k":null}}`, "empty"},
		{"part out of range", `{"version":1,"uploads":{"k":{"size":10,"sha256":"` + goodSum + `","upload_id":"u","part_size":5,"parts":{"3":"e"}}}}`, "part 3 of 2"},
		{"sending out of range", `{"version":1,"uploads":{"k":{"size":10,"sha256":"` + goodSum + `","upload_id":"u","part_size":5,"sending":{"0":true}}}}`, "part 0 of 2"},
		{"zero part size", `{"version":1,"uploads":{"k":{"size":10,"sha256":"` + goodSum + `","upload_id":"u","part_size":0}}}`, "part size 0"},
		{"no upload id", `{"version":1,"uploads":{"k":{"size":10,"sha256":"` + goodSum + `","part_size":5}}}`, "no upload id"},
		{"bad sha256", `{"version":1,"done":{"k":{"size":1,"sha256":"xyz"}}}`, "64 hex"},
		{"negative size", `{"version":1,"done":{"k":{"size":-1,"sha256":"` + goodSum + `"}}}`, "size -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeJournal([]byte(tc.in))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("decodeJournal(%s) = %v, want error containing %q", tc.in, err, tc.err)
			}
		})
	}
}

// A journal that does not parse is refused with its path and left alone.
func TestOpenJournalBad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openJournal(p, "http://h", "b"); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("openJournal(garbage) = %v, want an error naming %s", err, p)
	}
	if b, _ := os.ReadFile(p); string(b) != "garbage" {
		t.Errorf("journal rewritten to %q", b)
	}
}

// Saved and read back, the state is the same; for another bucket it is
// not used.
func TestJournalSaveOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := openJournal(p, "http://h", "b")
	if err != nil {
		t.Fatal(err)
	}
	err = j.update(func(st *journalState) {
		st.Uploads["k"] = &upload{fileID: fileID{Size: 10, SHA256: goodSum}, UploadID: "u", PartSize: 5, Parts: map[int]string{1: "e"}}
		st.Done["d"] = fileID{Size: 1, SHA256: goodSum}
	})
	if err != nil {
		t.Fatal(err)
	}
	j2, err := openJournal(p, "http://h", "b")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(j.state)
	b, _ := json.Marshal(j2.state)
	if string(a) != string(b) {
		t.Errorf("read back %s, want %s", b, a)
	}
	j3, err := openJournal(p, "http://h", "other")
	if err != nil || len(j3.state.Uploads)+len(j3.state.Done) != 0 {
		t.Errorf("journal for another bucket: %+v, %v; want empty", j3.state, err)
	}
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add([]byte(`{"version":1,"uploads":{"k":{"size":10,"sha256":"` + goodSum + `","upload_id":"u","part_size":5,"parts":{"1":"e"}}}}`))
	f.Add([]byte(`{"version":1,"done":{"k":{"size":1,"sha256":"` + goodSum + `"}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeJournal(b)
		if err != nil {
			return
		}
		for k, u := range st.Uploads {
			n := (u.Size + u.PartSize - 1) / u.PartSize
			for p := range u.Parts {
				if p < 1 || int64(p) > n {
					t.Fatalf("accepted upload %q with part %d of %d", k, p, n)
				}
			}
		}
		// What decodes encodes and decodes again.
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeJournal(again); err != nil {
			t.Fatalf("re-encoded journal refused: %v", err)
		}
	})
}
