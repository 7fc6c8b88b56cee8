package s3

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// journalVersion is the format Upload writes; another is refused.
const journalVersion = 1

// maxJournal bounds the journal file read (a million files of metadata).
const maxJournal = 256 << 20

// fileID is what identifies a file's content in the journal.
type fileID struct {
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime_ns"`
	SHA256 string `json:"sha256"`
}

// upload is a multipart upload under way.
type upload struct {
	fileID
	UploadID string         `json:"upload_id"`
	PartSize int64          `json:"part_size"`
	Parts    map[int]string `json:"parts,omitempty"`   // part number → ETag, confirmed by the server
	Sending  map[int]bool   `json:"sending,omitempty"` // parts started and not yet confirmed
}

// journal is the state of one directory's uploads to one location.
type journal struct {
	path string // "" = kept in memory only

	mu    sync.Mutex // guards state and writes of the file
	state journalState
}

type journalState struct {
	Version  int                `json:"version"`
	Endpoint string             `json:"endpoint"`
	Bucket   string             `json:"bucket"`
	Uploads  map[string]*upload `json:"uploads,omitempty"` // key → multipart upload under way
	Done     map[string]fileID  `json:"done,omitempty"`    // key → content uploaded
}

// openJournal reads the journal at path for the location, or starts an
// empty one (path missing, or written for another endpoint or bucket).
func openJournal(path, endpoint, bucket string) (*journal, error) {
	j := &journal{path: path, state: journalState{Version: journalVersion, Endpoint: endpoint, Bucket: bucket}}
	if path == "" {
		return j, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	case len(b) > maxJournal:
		return nil, fmt.Errorf("journal %s: %d bytes, more than %d", path, len(b), maxJournal)
	}
	st, err := decodeJournal(b)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w (remove it to start the upload over)", path, err)
	}
	if st.Endpoint == endpoint && st.Bucket == bucket {
		j.state = st
	}
	return j, nil
}

// decodeJournal parses and checks a journal file.
func decodeJournal(b []byte) (journalState, error) {
	var st journalState
	if err := json.Unmarshal(b, &st); err != nil {
		return journalState{}, errors.New("not a journal (bad JSON)")
	}
	if st.Version != journalVersion {
		return journalState{}, fmt.Errorf("version %d, want %d", st.Version, journalVersion)
	}
	for k, u := range st.Uploads {
		if u == nil {
			return journalState{}, fmt.Errorf("upload of %q: empty", k)
		}
		if err := u.check(); err != nil {
			return journalState{}, fmt.Errorf("upload of %q: %w", k, err)
		}
		if u.UploadID == "" {
			return journalState{}, fmt.Errorf("upload of %q: no upload id", k)
		}
		if u.PartSize <= 0 {
			return journalState{}, fmt.Errorf("upload of %q: part size %d", k, u.PartSize)
		}
		n := (u.Size + u.PartSize - 1) / u.PartSize
		for p := range u.Parts {
			if p < 1 || int64(p) > n {
				return journalState{}, fmt.Errorf("upload of %q: part %d of %d", k, p, n)
			}
		}
		for p := range u.Sending {
			if p < 1 || int64(p) > n {
				return journalState{}, fmt.Errorf("upload of %q: part %d of %d", k, p, n)
			}
		}
	}
	for k, f := range st.Done {
		if err := f.check(); err != nil {
			return journalState{}, fmt.Errorf("file %q: %w", k, err)
		}
	}
	return st, nil
}

func (f fileID) check() error {
	if f.Size < 0 {
		return fmt.Errorf("size %d", f.Size)
	}
	if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
		return errors.New("sha256 is not 64 hex digits")
	}
	return nil
}

// update changes the state under the lock and saves it.
func (j *journal) update(fn func(*journalState)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state.Uploads == nil {
		j.state.Uploads = map[string]*upload{}
	}
	if j.state.Done == nil {
		j.state.Done = map[string]fileID{}
	}
	fn(&j.state)
	return j.saveLocked()
}

// read calls fn with the state under the lock.
func (j *journal) read(fn func(*journalState)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.state)
}

// saveLocked writes the journal atomically: a temporary file, synced,
// renamed over the old one.
func (j *journal) saveLocked() error {
	if j.path == "" {
		return nil
	}
	b, err := json.Marshal(&j.state)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
