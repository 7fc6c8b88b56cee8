package api

import (
	"context"
	"net/http"
	"time"
)

// Command prefixes (UCAN commands) a user anchors or delegates. A
// delegation of a prefix covers every command under it.
const (
	// CmdRoot covers every command of a node: `dms init` trusts the
	// home's user for it, and a devnet's nodes trust its operator for it.
	CmdRoot = "/dms"
	// CmdDeployment and CmdAllocation are what a user delegates to their
	// node to let it deploy on their behalf (DeployRequest.Chains).
	CmdDeployment = "/dms/deployment"
	CmdAllocation = "/dms/allocation"
)

// Anchor is a trust anchor: the node runs commands under Cmd when their
// delegation chain starts at Root.
type Anchor struct {
	Root string `json:"root"` // a DID
	Cmd  string `json:"cmd"`
}

// CapToken is a delegation a home issued or imported.
type CapToken struct {
	CID       string    `json:"cid"`
	Issuer    string    `json:"issuer"`
	Audience  string    `json:"audience"`
	Subject   string    `json:"subject"`
	Cmd       string    `json:"cmd"`
	Policy    string    `json:"policy,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	Expiry    time.Time `json:"expiry,omitzero"`
	Source    string    `json:"source"`  // "issued", or the imported file's path
	Chain     string    `json:"chain"`   // the token file (container text) from the root to this token
	Added     time.Time `json:"added"`   // when it was recorded
	Revoked   bool      `json:"revoked"` // revoked since
}

// Revocation is a signed revocation of the delegation CID by Issuer (that
// delegation's issuer or the issuer of one of its ancestors).
type Revocation struct {
	CID       string    `json:"cid"`
	Issuer    string    `json:"issuer"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"signature"`
}

// CapListing is GET /api/v1/cap, and what `dms cap list -o json` prints:
// the capability state of a home.
type CapListing struct {
	Anchors     []Anchor     `json:"anchors"`
	Tokens      []CapToken   `json:"tokens"`
	Revocations []Revocation `json:"revocations"`
}

// AnchorRequest is POST /api/v1/cap/anchors: trust Root for commands under
// Cmd (or stop, with Remove).
type AnchorRequest struct {
	Root   string `json:"root"`
	Cmd    string `json:"cmd"`
	Remove bool   `json:"remove,omitempty"`
}

// RevokeRequest is POST /api/v1/cap/revocations: a signed revocation record
// and the chain of the token it revokes (container text).
type RevokeRequest struct {
	Revocation Revocation `json:"revocation"`
	Chain      string     `json:"chain"`
}

// ImportRequest is POST /api/v1/cap/tokens: record a token file.
type ImportRequest struct {
	Chain  string `json:"chain"`
	Source string `json:"source"`
}

// VerifyRequest is POST /api/v1/cap/verify: does the chain, held by its
// final audience, authorize Cmd with Args here? 200, or 403 with code
// "denied" and the failing rule.
type VerifyRequest struct {
	Chain string         `json:"chain"`
	Cmd   string         `json:"cmd"`
	Args  map[string]any `json:"args,omitempty"`
}

// Capabilities returns the node's capability state: trust anchors,
// recorded tokens, revocations.
func (c *Client) Capabilities(ctx context.Context) (*CapListing, error) {
	var l CapListing
	return &l, c.do(ctx, http.MethodGet, "/api/v1/cap", nil, &l)
}

// Anchor makes the node trust (or, with Remove, stop trusting) a root for
// a command prefix; it applies to the next invocation.
func (c *Client) Anchor(ctx context.Context, req AnchorRequest) error {
	return c.do(ctx, http.MethodPost, "/api/v1/cap/anchors", req, nil)
}

// Revoke records a signed revocation, verified against the revoked
// token's chain; the node refuses the token from then on.
func (c *Client) Revoke(ctx context.Context, req RevokeRequest) error {
	return c.do(ctx, http.MethodPost, "/api/v1/cap/revocations", req, nil)
}

// ImportToken records a token file and returns it as recorded.
func (c *Client) ImportToken(ctx context.Context, req ImportRequest) (*CapToken, error) {
	var t CapToken
	return &t, c.do(ctx, http.MethodPost, "/api/v1/cap/tokens", req, &t)
}

// Verify checks that a chain authorizes a command here. A refusal is an
// *Error with Code CodeDenied and the failing rule in its message.
func (c *Client) Verify(ctx context.Context, req VerifyRequest) error {
	return c.do(ctx, http.MethodPost, "/api/v1/cap/verify", req, nil)
}

// SourceIssued is the Source of a token issued by the home itself (dms cap
// grant, dms cap delegate); an imported token's Source is its file.
const SourceIssued = "issued"
