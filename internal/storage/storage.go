// Package storage holds what the volume kinds share: credentials (secrets
// that never print), the error that names a volume, and transfer
// progress. The kinds themselves live in local/ (a provider directory,
// optionally size-bounded), s3/ (a bucket prefix staged in and uploaded
// out) and web/ (one HTTP(S) file checked by its SHA-256). Executors never
// see any of it: they get a directory to mount.
package storage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Credentials are the keys of an S3 account. They never print: String,
// GoString and the JSON form (for logs and status) hide them; MarshalSecret
// is the only way out in clear.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// Anonymous reports whether no keys are set.
func (c Credentials) Anonymous() bool { return c.AccessKeyID == "" && c.SecretAccessKey == "" }

// String hides the keys.
func (c Credentials) String() string {
	if c.Anonymous() {
		return "credentials(anonymous)"
	}
	return "credentials(redacted)"
}

// GoString hides the keys from %#v.
func (c Credentials) GoString() string { return c.String() }

// MarshalJSON hides the keys from any JSON a struct holding them becomes.
func (c Credentials) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// MarshalSecret returns the keys in a form ParseCredentials reads back
// exactly (the JSON object), for sealing.
func (c Credentials) MarshalSecret() []byte {
	m := map[string]string{"access_key_id": c.AccessKeyID, "secret_access_key": c.SecretAccessKey}
	if c.SessionToken != "" {
		m["session_token"] = c.SessionToken
	}
	b, _ := json.Marshal(m) // a map of strings always encodes
	return append(b, '\n')
}

// maxSecret bounds a secret file.
const maxSecret = 64 << 10

// ParseCredentials reads S3 keys from a secret file: KEY=VALUE lines
// (access_key_id, secret_access_key, session_token; the AWS_ prefix and
// any case are accepted, as in an AWS environment file; # starts a
// comment), or a JSON object with those keys. Its errors never quote a
// value.
func ParseCredentials(b []byte) (Credentials, error) {
	if len(b) > maxSecret {
		return Credentials{}, fmt.Errorf("credentials: %d bytes, more than %d", len(b), maxSecret)
	}
	if !utf8.Valid(b) {
		return Credentials{}, errors.New("credentials: not UTF-8 text")
	}
	fields := map[string]string{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(t, &fields); err != nil {
			return Credentials{}, errors.New("credentials: not a JSON object of strings")
		}
		for k, v := range fields {
			fields[k] = strings.TrimSpace(v) // as a line's value is
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 4096), maxSecret)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
			if !ok {
				return Credentials{}, fmt.Errorf("credentials: line %d is not KEY=VALUE", n)
			}
			fields[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		if err := sc.Err(); err != nil {
			return Credentials{}, fmt.Errorf("credentials: %w", err)
		}
	}
	var c Credentials
	seen := map[string]bool{}
	for k, v := range fields {
		name := strings.TrimPrefix(strings.ToLower(k), "aws_")
		if seen[name] {
			// which one would win is the map's order: refuse
			return Credentials{}, fmt.Errorf("credentials: %s given twice", name)
		}
		seen[name] = true
		switch name {
		case "access_key_id":
			c.AccessKeyID = v
		case "secret_access_key":
			c.SecretAccessKey = v
		case "session_token":
			c.SessionToken = v
		default:
			return Credentials{}, fmt.Errorf("credentials: unknown key %q (access_key_id, secret_access_key, session_token)", k)
		}
	}
	switch {
	case c.AccessKeyID == "":
		return Credentials{}, errors.New("credentials: access_key_id is missing")
	case c.SecretAccessKey == "":
		return Credentials{}, errors.New("credentials: secret_access_key is missing")
	}
	return c, nil
}

// VolumeError is the one reason an allocation fails for a volume: it names
// the volume and what was being done. Err must not hold a credential.
type VolumeError struct {
	Volume string // the volume's name in the ensemble
	Op     string // "stage", "upload", "mount", "fetch"
	Err    error
}

func (e *VolumeError) Error() string { return fmt.Sprintf("volume %s: %s: %v", e.Volume, e.Op, e.Err) }
func (e *VolumeError) Unwrap() error { return e.Err }

// Progress is how far a transfer is: bytes and objects done of the total
// known so far (Total grows while a listing goes on).
type Progress struct {
	Bytes, TotalBytes     int64
	Objects, TotalObjects int
}

// ProgressFunc is told of progress; it must not block.
type ProgressFunc func(Progress)
