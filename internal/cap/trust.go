package cap

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/dmsnet/dms/internal/identity"
)

// ValidCommand checks s is a command: "/" or "/seg/…" with non-empty
// lower-case segments and no spaces, e.g. /dms/node/peers/list.
func ValidCommand(s string) error {
	switch {
	case s == "/":
		return nil
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("command %q must start with /", s)
	case strings.HasSuffix(s, "/"):
		return fmt.Errorf("command %q must not end with /", s)
	case len(s) > 512:
		return fmt.Errorf("command %.40q… is longer than 512 bytes", s)
	}
	for _, seg := range strings.Split(s[1:], "/") {
		if seg == "" {
			return fmt.Errorf("command %q has an empty segment", s)
		}
		for _, r := range seg {
			if r <= ' ' || r == 0x7f || unicode.ToLower(r) != r {
				return fmt.Errorf("command %q: segments are lower-case, without spaces or control characters", s)
			}
		}
	}
	return nil
}

// Covers reports whether command prefix covers cmd by whole path segments:
// /dms covers /dms and /dms/node/peers/list, not /dmsx; / covers all.
func Covers(prefix, cmd string) bool {
	if prefix == "/" {
		return strings.HasPrefix(cmd, "/")
	}
	return cmd == prefix || strings.HasPrefix(cmd, prefix) && cmd[len(prefix)] == '/'
}

// PublicPrefix is the command prefix any valid self-signed invocation may
// use, with no delegation and no trust anchor.
const PublicPrefix = "/public"

// Anchor trusts Root as the origin of authority for the commands under
// Cmd.
type Anchor struct {
	Root identity.DID `json:"root"`
	Cmd  string       `json:"cmd"`
}

func (a Anchor) String() string { return string(a.Root) + " " + a.Cmd }

// Validate checks the anchor's DID and command.
func (a Anchor) Validate() error {
	if _, err := identity.ParseDID(string(a.Root)); err != nil {
		return fmt.Errorf("anchor root: %w", err)
	}
	if err := ValidCommand(a.Cmd); err != nil {
		return fmt.Errorf("anchor: %w", err)
	}
	return nil
}

// Trust is a node's trust context: the anchors it accepts chains from. The
// zero value trusts no one. A Trust is immutable; build a new one to
// change it (Verifier.SetTrust swaps it atomically).
type Trust struct {
	anchors []Anchor
}

// NewTrust returns the trust context of anchors, checking each.
func NewTrust(anchors ...Anchor) (Trust, error) {
	for _, a := range anchors {
		if err := a.Validate(); err != nil {
			return Trust{}, err
		}
	}
	return Trust{anchors: slices.Clone(anchors)}, nil
}

// Trusts reports whether root is anchored for a prefix covering cmd.
func (t Trust) Trusts(root identity.DID, cmd string) bool {
	for _, a := range t.anchors {
		if a.Root == root && Covers(a.Cmd, cmd) {
			return true
		}
	}
	return false
}

// Anchors returns a copy of the anchors.
func (t Trust) Anchors() []Anchor { return slices.Clone(t.anchors) }
