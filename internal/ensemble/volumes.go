package ensemble

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/match"
)

// Bounds of a volume.
const (
	MinVolumeSize = match.Bytes(1 << 20) // a size: less is too small for a filesystem
	MinSyncEvery  = time.Second          // an s3 volume's sync_every
)

// bucketRE is an S3 bucket name: 3 to 63 lower-case letters, digits, dots
// and hyphens, starting and ending with a letter or digit.
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// volume checks one volume's fields against its kind and mode (the kind
// and mode enums are checked by their tags).
func (v *validator) volume(vp string, vol Volume) {
	given := func(key string, set bool) bool { return set || v.pos != nil && v.has(vp+"."+key) }
	refuse := func(key string, set bool, why string) {
		if given(key, set) {
			v.addf(vp+"."+key, "%s", why)
		}
	}
	if vol.Size != 0 || v.pos != nil && v.has(vp+".size") {
		if vol.Kind == URL {
			v.addf(vp+".size", "not used by a url volume (its size is the file's)")
		} else if vol.Size < MinVolumeSize {
			v.addf(vp+".size", "%s is less than %s", vol.Size, MinVolumeSize)
		}
	}
	switch vol.Kind {
	case Local:
		if vol.Mode != "" && vol.Mode != ModeOut {
			v.addf(vp+".mode", "a local volume has no mode %s (only out: a result to fetch; omit it for a scratch directory)", vol.Mode)
		}
		if vol.Mode == ModeOut && vol.ReadOnly {
			v.addf(vp+".read_only", "an out volume must be writable (the job writes its results there)")
		}
		for _, f := range []struct {
			key string
			set bool
		}{{"s3", vol.S3 != nil}, {"url", vol.URL != ""}, {"sha256", vol.SHA256 != ""}, {"file", vol.File != ""}} {
			refuse(f.key, f.set, fmt.Sprintf("not used by a local volume (%s)", kindOf(f.key)))
		}
	case S3:
		switch vol.Mode {
		case "":
			if !v.has(vp + ".mode") {
				v.addf(vp+".mode", "missing (an s3 volume needs a mode: in, out or inout)")
			}
		case ModeOut, ModeInOut:
			if vol.ReadOnly {
				v.addf(vp+".read_only", "an %s volume must be writable (what the job writes is uploaded)", vol.Mode)
			}
		}
		for _, f := range []struct {
			key string
			set bool
		}{{"url", vol.URL != ""}, {"sha256", vol.SHA256 != ""}, {"file", vol.File != ""}} {
			refuse(f.key, f.set, fmt.Sprintf("not used by an s3 volume (%s)", kindOf(f.key)))
		}
		if vol.S3 == nil {
			if !v.has(vp + ".s3") {
				v.addf(vp+".s3", "missing (an s3 volume needs s3: {bucket: ...})")
			}
			return
		}
		v.s3(vp+".s3", vol.Mode, vol.S3)
	case URL:
		if vol.Mode != "" && vol.Mode != ModeIn {
			v.addf(vp+".mode", "a url volume is an input: mode in or none, not %s", vol.Mode)
		}
		refuse("s3", vol.S3 != nil, "not used by a url volume (an s3 volume's)")
		switch {
		case vol.URL == "":
			v.addf(vp+".url", "missing (a url volume needs the address of its file)")
		default:
			if err := checkHTTPURL(vol.URL, true); err != nil {
				v.addf(vp+".url", "%v", err)
			}
		}
		switch {
		case vol.SHA256 == "":
			v.addf(vp+".sha256", "missing (a url volume needs the file's SHA-256, 64 hex digits)")
		case !isSHA256(vol.SHA256):
			v.addf(vp+".sha256", "%q is not a SHA-256 (64 hex digits)", clip(vol.SHA256))
		}
		if given("file", vol.File != "") {
			if err := checkFileName(vol.File); err != nil {
				v.addf(vp+".file", "%v", err)
			}
		}
	}
}

// kindOf says which kind a volume field belongs to.
func kindOf(key string) string {
	if key == "s3" {
		return "an s3 volume's"
	}
	return "a url volume's"
}

// s3 checks the s3 block of an s3 volume in mode.
func (v *validator) s3(p string, mode VolumeMode, s *S3Volume) {
	if s.Bucket != "" && !bucketRE.MatchString(s.Bucket) {
		v.addf(p+".bucket", "%q is not a bucket name (3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)", clip(s.Bucket))
	} else if strings.Contains(s.Bucket, "..") {
		v.addf(p+".bucket", "%q is not a bucket name (no two dots in a row)", s.Bucket)
	}
	if s.Prefix != "" {
		switch {
		case strings.HasPrefix(s.Prefix, "/"):
			v.addf(p+".prefix", "%q starts with / (a key prefix is relative to the bucket)", clip(s.Prefix))
		case hasDotDot(s.Prefix):
			v.addf(p+".prefix", "%q has a .. element", clip(s.Prefix))
		case strings.ContainsFunc(s.Prefix, func(r rune) bool { return r < ' ' || r == 0x7f }):
			v.addf(p+".prefix", "%q has a control character", clip(s.Prefix))
		}
	}
	if s.Endpoint != "" || v.pos != nil && v.has(p+".endpoint") {
		if err := checkHTTPURL(s.Endpoint, false); err != nil {
			v.addf(p+".endpoint", "%v", err)
		}
	}
	if s.Region == "" && v.pos != nil && v.has(p+".region") {
		v.addf(p+".region", "empty (omit it for us-east-1)")
	} else if strings.ContainsFunc(s.Region, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) {
		v.addf(p+".region", "%q is not a region (lower-case letters, digits and '-', such as eu-west-1)", clip(s.Region))
	}
	if s.SyncEvery != 0 || v.pos != nil && v.has(p+".sync_every") {
		switch {
		case mode == ModeIn:
			v.addf(p+".sync_every", "only for mode out or inout (an in volume is never uploaded)")
		case s.SyncEvery < MinSyncEvery:
			v.addf(p+".sync_every", "%s is shorter than %s", formatDuration(s.SyncEvery), formatDuration(MinSyncEvery))
		}
	}
	if c := s.Credentials; c != nil {
		cp := p + ".credentials"
		switch {
		case c.Secret != "" && c.Provider != "":
			v.addf(cp, "want one of secret or provider, got both")
		case c.Secret == "" && c.Provider == "":
			v.addf(cp, "want one of secret (given at deploy time) or provider (configured by the provider's operator); omit credentials for anonymous access")
		case c.Secret != "" && !IsName(c.Secret):
			v.addf(cp+".secret", "%s", nameProblem(c.Secret))
		case c.Provider != "" && !IsName(c.Provider):
			v.addf(cp+".provider", "%s", nameProblem(c.Provider))
		}
	}
}

// checkHTTPURL reports an address that is not http(s)://host[:port]...; a
// file's address (file true) may have a path and a query, an endpoint's
// neither. Neither may carry a user or password.
func checkHTTPURL(s string, file bool) error {
	what := "an endpoint (http(s)://host[:port])"
	if file {
		what = "an http(s) URL"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q is not %s", clip(s), what)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not %s: the scheme must be http or https", clip(s), what)
	case u.User != nil:
		// Never quote it: it may hold a password.
		return fmt.Errorf("the address has a user name or password (give credentials as a secret, not in the address)")
	case u.Hostname() == "":
		return fmt.Errorf("%q is not %s: no host", clip(s), what)
	case !file && (u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != ""):
		return fmt.Errorf("%q is not %s: no path or query (the bucket is given apart)", clip(s), what)
	case file && u.Fragment != "":
		return fmt.Errorf("%q has a fragment (#...), which is never sent", clip(s))
	}
	return nil
}

// checkFileName reports a name that is not a plain file name.
func checkFileName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a file name", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("%q is not a plain file name (no slash)", clip(name))
	case len(name) > 255:
		return fmt.Errorf("a file name of %d bytes (at most 255)", len(name))
	}
	return nil
}

// hasDotDot reports whether a slash-separated key has a ".." element.
func hasDotDot(key string) bool {
	for _, e := range strings.Split(key, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// clip shortens a value quoted in a problem.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// SecretUse is one volume that needs a secret given at deploy time.
type SecretUse struct {
	Secret     string // the secret's name (credentials.secret)
	Allocation string
	Volume     string
}

// SecretUses lists the volumes whose credentials are a secret the user
// gives at deploy time, by allocation and volume name.
func (s *Spec) SecretUses() []SecretUse {
	var out []SecretUse
	for _, an := range mapkeys.Sorted(s.Allocations) {
		a := s.Allocations[an]
		for _, vn := range mapkeys.Sorted(a.Volumes) {
			if name := a.Volumes[vn].Secret(); name != "" {
				out = append(out, SecretUse{Secret: name, Allocation: an, Volume: vn})
			}
		}
	}
	return out
}

// Secret returns the name of the secret a volume's credentials are, or "".
func (v Volume) Secret() string {
	if v.Kind != S3 || v.S3 == nil || v.S3.Credentials == nil {
		return ""
	}
	return v.S3.Credentials.Secret
}

// CheckSecrets reports, in one error, every secret the spec needs that
// given lacks, and every name in given that the spec does not use (a
// typo). It checks names only, never values.
func (s *Spec) CheckSecrets(given []string) error {
	have := map[string]bool{}
	for _, g := range given {
		have[g] = true
	}
	used := map[string]bool{}
	var msgs []string
	for _, u := range s.SecretUses() {
		if !used[u.Secret] && !have[u.Secret] {
			msgs = append(msgs, fmt.Sprintf("volume %s of allocation %s needs the secret %s: dms deploy --secret %s=FILE", u.Volume, u.Allocation, u.Secret, u.Secret))
		}
		used[u.Secret] = true
	}
	names := mapkeys.Sorted(used)
	for _, g := range mapkeys.Sorted(have) {
		if used[g] {
			continue
		}
		msgs = append(msgs, fmt.Sprintf("secret %s is given but no s3 volume's credentials.secret names it%s", g, didYouMean(g, names)))
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
