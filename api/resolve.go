package api

import (
	"context"
	"net/http"
	"net/url"
)

// Resolved is what GET /api/v1/deployments/{id}/resolve answers: the full
// deployment ID a prefix designates and, when asked, the full name of an
// allocation.
//
// Every endpoint under /api/v1/deployments/{id} accepts a unique prefix of
// the ID (at least 4 characters unless exact), and a unique prefix of an
// allocation name where it takes one ({alloc} or {allocation} in the path, or the
// allocation query parameter): the node resolves them. A prefix matching
// several is a 400 with code ambiguous and the candidates; one matching
// nothing a 404.
type Resolved struct {
	ID         string `json:"id"`
	Allocation string `json:"allocation,omitempty"`
}

// Resolve returns the deployment ID that idPrefix designates and, with a
// non-empty allocPrefix, the name of the allocation of that deployment it
// designates. Errors are *Error with code not-found or ambiguous (whose
// Candidates list the matches).
func (c *Client) Resolve(ctx context.Context, idPrefix, allocPrefix string) (*Resolved, error) {
	if idPrefix == "" {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "no deployment ID"}
	}
	path := "/api/v1/deployments/" + url.PathEscape(idPrefix) + "/resolve"
	if allocPrefix != "" {
		path += "?" + url.Values{"allocation": {allocPrefix}}.Encode()
	}
	var r Resolved
	if err := c.do(ctx, http.MethodGet, path, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
