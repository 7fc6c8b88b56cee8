// Package api is the public REST interface of a dms node: the wire types of
// every endpoint under /api/v1/ and the Go client the CLI and the dashboard
// use. Nothing here imports internal packages, so other programs can use the
// client as it is.
//
// The API listens on loopback only and every endpoint but GET
// /api/v1/health needs the node's token (Authorization: Bearer <token>), which
// `dms init` writes to <home>/api.token. Errors are JSON objects with a
// stable code (see Error). openapi.yaml documents every endpoint; the node
// serves it at /api/v1/openapi.yaml.
//
// Usage:
//
//	c, err := api.NewClient(api.ClientConfig{Addr: "127.0.0.1:9999", Token: token})
//	node, err := c.Node(ctx)
//	peers, err := c.Peers(ctx)
//	reply, err := c.Invoke(ctx, api.ActorRequest{To: h, Behavior: "/public/hello", Invocation: inv})
package api
