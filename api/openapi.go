package api

import _ "embed"

// OpenAPI is the OpenAPI 3 description of the REST API (openapi.yaml),
// served by the node at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
