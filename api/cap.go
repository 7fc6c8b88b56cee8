package api

import "encoding/json"

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
	Revocation json.RawMessage `json:"revocation"`
	Chain      string          `json:"chain"`
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
