package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
)

func newInvokeCmd(a *app) *cobra.Command {
	var to, data, tokenFile, topic string
	var timeout time.Duration
	var oneWay bool
	cmd := &cobra.Command{
		Use:   "invoke BEHAVIOR --to PEER|DID [--data JSON]",
		Short: "Invoke a behavior of a node's actor and print the reply",
		Long: `Invoke a behavior (e.g. /public/hello, /dms/node/peers/list) on a node.

The invocation is signed with this home's user key (passphrase from
$DMS_PASSPHRASE, $DMS_PASSPHRASE_FILE or a prompt) and relayed by the local
node; it is bound to that node's peer ID and to the payload, and is used
once. For a command outside /public, the target must trust the user key, or a
key that delegated to it: pass the delegation with --token FILE (from
dms cap grant/delegate) when your key is not trusted directly.

A refusal prints its typed error, e.g. "denied: untrusted-root: ...", and
exits 1.`,
		Example: `  dms invoke /public/hello --to 12D3KooW...
  dms invoke /dms/node/peers/list --to did:key:z6Mk... --token alice.tok
  dms invoke /dms/node/peers/ping --to 12D3KooW... --data '{"peer":"12D3KooX..."}'
  dms invoke /dms/x --topic jobs --data '{}'   # broadcast, collect replies`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			behavior := args[0]
			if err := cap.ValidCommand(behavior); err != nil {
				return usageError{err}
			}
			if (to == "") == (topic == "") {
				return usagef("give exactly one of --to PEER|DID and --topic TOPIC")
			}
			var payload json.RawMessage
			if data != "" {
				// Compact, as the request body carries it: the
				// invocation commits to these exact bytes.
				var buf bytes.Buffer
				if err := json.Compact(&buf, []byte(data)); err != nil {
					return usagef("--data is not valid JSON: %s", data)
				}
				payload = buf.Bytes()
			}
			var target api.Handle
			var aud identity.DID
			if to != "" {
				h, err := handleOf(to)
				if err != nil {
					return usageError{err}
				}
				target, aud = h, identity.DID(h.DID)
			}
			var chain cap.Chain
			if tokenFile != "" {
				raw, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("read token: %w", err)
				}
				if chain, err = cap.DecodeChain(raw); err != nil {
					return fmt.Errorf("token %s: %w", tokenFile, err)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			user, err := a.loadKey("user")
			if err != nil {
				return err
			}
			if chain != nil && chain.Holder() != user.DID() {
				return fmt.Errorf("token %s is delegated to %s, not to this home's user %s", tokenFile, chain.Holder().Short(), user.DID().Short())
			}
			// The invocation is bound to the node that relays it and to
			// the payload: no other peer can send it, nor with another
			// payload.
			relay, err := c.Node(a.ctx)
			if err != nil {
				return err
			}
			inv, err := cap.Invoke(user, cap.InvocationParams{Audience: aud, Command: behavior, Proofs: chain,
				Expiry: time.Now().Add(min(timeout, 10*time.Minute) + 30*time.Second),
				Args:   cap.Bind(relay.PeerID, payload).Args()})
			if err != nil {
				return err
			}
			req := api.ActorRequest{To: target, Topic: topic, Behavior: behavior, Payload: payload, From: string(user.DID()),
				Invocation: cap.BundleOf(inv, chain), TimeoutMS: timeout.Milliseconds()}
			switch {
			case topic != "":
				res, err := c.Broadcast(a.ctx, req)
				if err != nil {
					return err
				}
				return a.print(res, func(w io.Writer) error {
					for _, r := range res.Replies {
						if r.Error != nil {
							fmt.Fprintf(w, "%s: %s: %s\n", r.From.Host, r.Error.Code, r.Error.Message)
							continue
						}
						fmt.Fprintf(w, "%s: %s\n", r.From.Host, r.Payload)
					}
					return nil
				})
			case oneWay:
				return c.Send(a.ctx, req)
			}
			res, err := c.Invoke(a.ctx, req)
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) error { return printJSON(w, res.Payload) })
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "target node: peer ID (12D3KooW…) or DID (did:key:z6Mk…)")
	cmd.Flags().StringVar(&topic, "topic", "", "broadcast to this topic instead of --to, and collect replies")
	cmd.Flags().StringVar(&data, "data", "", "JSON payload")
	cmd.Flags().StringVar(&tokenFile, "token", "", "delegation chain (token file) proving the user key may invoke BEHAVIOR")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the reply (or to collect broadcast replies)")
	cmd.Flags().BoolVar(&oneWay, "send", false, "send one way, without waiting for a reply")
	return cmd
}

// handleOf turns a peer ID or DID into the handle of that node's root actor.
func handleOf(s string) (api.Handle, error) {
	var did identity.DID
	var host string
	var err error
	if identity.DID(s).Valid() {
		did = identity.DID(s)
		host, err = did.PeerID()
	} else {
		host = s
		did, err = identity.DIDFromPeerID(s)
	}
	if err != nil {
		return api.Handle{}, fmt.Errorf("--to %q: want a peer ID (12D3KooW…) or a did:key", s)
	}
	return api.Handle{DID: string(did), Host: host, Inbox: "root"}, nil
}

// printJSON writes JSON indented, or nothing for an empty payload.
func printJSON(w io.Writer, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = fmt.Fprintf(w, "%s\n", raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
