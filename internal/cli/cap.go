package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/node"
)

// capState is what the cap commands read and change: the home's
// capability state: the local store (node.CapState), or, while the home's
// node runs and holds the store, the node's REST API (remoteCapState).
type capState interface {
	Anchor(a cap.Anchor, remove bool) error
	Revoke(r cap.Revocation, chain cap.Chain) error
	Import(chain cap.Chain, source string) (api.CapToken, error)
	List() (api.CapListing, error)
	Verify(chain cap.Chain, cmd string, args map[string]any) error
	Close() error
}

func (a *app) openCapState() (capState, error) {
	if c, ok := a.runningNode(); ok {
		return &remoteCapState{a: a, c: c}, nil
	}
	if err := a.requireHome(); err != nil {
		return nil, err
	}
	return node.OpenCapState(a.home)
}

// capDefaults records the default trust of a new home (dms init): the
// node trusts the home's user for /dms.
func (a *app) capDefaults(user identity.DID) error {
	st, err := node.OpenCapState(a.home)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.EnsureDefaults(user)
}

// withCapState runs fn on the home's capability state.
func (a *app) withCapState(fn func(capState) error) error {
	st, err := a.openCapState()
	if err != nil {
		return err
	}
	err = fn(st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

func newCapCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "cap",
		Short: "Capabilities: trust anchors, delegations (UCAN), revocation",
		Long: `Manage who may do what on this node, with UCAN capability tokens.

A node runs an invocation when its delegation chain starts at a root this node
trusts (an anchor) for a command prefix covering the invoked command. A new home
trusts its own user key for /dms.

  dms cap anchor --root DID [--cmd /dms]        trust DID as a root for commands under the prefix
  dms cap grant --to DID --cmd CMD -o tok       delegate part of your authority
  dms cap delegate --from tok --to DID --cmd CMD -o tok2   pass a received token on, narrowed
  dms cap verify --cmd CMD tok                  would this node accept tok for CMD?
  dms cap list | import FILE | revoke FILE|CID

Token files are go-ucan containers (base64 text) holding the whole chain from
the root. See docs/capabilities.md.`,
		Args: noArgs,
	}
	c.AddCommand(newCapAnchorCmd(a), newCapGrantCmd(a), newCapDelegateCmd(a), newCapVerifyCmd(a),
		newCapListCmd(a), newCapRevokeCmd(a), newCapImportCmd(a))
	return c
}

func newCapAnchorCmd(a *app) *cobra.Command {
	var root, prefix string
	var remove bool
	c := &cobra.Command{
		Use:   "anchor --root DID [--cmd PREFIX] [--remove]",
		Short: "Trust a DID as a root of authority for commands under a prefix",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return usagef("dms cap anchor: --root DID is required")
			}
			an := cap.Anchor{Root: identity.DID(root), Cmd: prefix}
			if err := an.Validate(); err != nil {
				return usagef("%v", err)
			}
			err := a.withCapState(func(st capState) error { return st.Anchor(an, remove) })
			if err != nil {
				return err
			}
			verb := "trusted"
			if remove {
				verb = "no longer trusted"
			}
			return a.print(an, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s %s for %s\n", verb, an.Root, an.Cmd)
				return err
			})
		},
	}
	c.Flags().StringVar(&root, "root", "", "the root DID to trust (did:key:…)")
	c.Flags().StringVar(&prefix, "cmd", api.CmdRoot, "the command prefix it is trusted for")
	c.Flags().BoolVar(&remove, "remove", false, "remove the anchor instead")
	return c
}

// tokenOutput is what grant and delegate print with -o json.
type tokenOutput struct {
	CID      string       `json:"cid"`
	Issuer   identity.DID `json:"issuer"`
	Audience identity.DID `json:"audience"`
	Subject  identity.DID `json:"subject"`
	Cmd      string       `json:"cmd"`
	Policy   string       `json:"policy,omitempty"`
	Expiry   time.Time    `json:"expiry,omitzero"`
	Depth    int          `json:"depth"`
	File     string       `json:"file,omitempty"`
	Token    string       `json:"token"`
}

// outFileHook lets grant and delegate take `-o FILE`: the global -o only
// knows table, json and yaml, so any other value is the output file.
func outFileHook(a *app, out *string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		if a.output != "table" && a.output != "json" && a.output != "yaml" {
			if *out != "" && *out != a.output {
				return usagef("-o %q and --out %q: give the token file once", a.output, *out)
			}
			*out = a.output
			a.output = "table"
		}
		return a.resolveGlobals()
	}
}

// tokenFlags are the flags grant and delegate share.
type tokenFlags struct {
	to, cmd, policy, out string
	expiry               string
}

func (f *tokenFlags) add(c *cobra.Command, defExpiry string) {
	c.Flags().StringVar(&f.to, "to", "", "the audience DID (did:key:…)")
	c.Flags().StringVar(&f.cmd, "cmd", "", "the command (prefix) delegated, e.g. /dms/node/peers")
	c.Flags().StringVar(&f.expiry, "expiry", defExpiry, "validity from now: a duration (90m, 24h, 7d)")
	c.Flags().StringVar(&f.policy, "policy", "", `policy over invocation arguments, DAG-JSON: '[["==", ".executor", "docker"]]'`)
	c.Flags().StringVar(&f.out, "out", "", "write the token file here (also -o FILE) instead of printing it")
}

func (f *tokenFlags) check(name string) error {
	if f.to == "" || f.cmd == "" {
		return usagef("dms cap %s: --to DID and --cmd CMD are required", name)
	}
	if _, err := identity.ParseDID(f.to); err != nil {
		return usagef("--to: %v", err)
	}
	if err := cap.ValidCommand(f.cmd); err != nil {
		return usagef("--cmd: %v", err)
	}
	if _, err := cap.ParsePolicy(f.policy); err != nil {
		return usagef("--policy: %v", err)
	}
	return nil
}

// parseValidity parses a positive duration; "7d" counts days.
func parseValidity(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 || d > 100*365*24*time.Hour {
		return 0, usagef("--expiry %q: want a positive duration such as 90m, 24h or 7d", s)
	}
	return d, nil
}

func newCapGrantCmd(a *app) *cobra.Command {
	var f tokenFlags
	c := &cobra.Command{
		Use:   "grant --to DID --cmd CMD [--expiry 24h] [--policy EXPR] [-o FILE]",
		Short: "Delegate a command (prefix) of your user's authority to a DID",
		Long: `Issue a root delegation signed by this home's user key: the audience --to may
invoke the commands under --cmd on nodes that trust your user DID (for a prefix
covering them), within --expiry and under --policy.

The token is printed, or written to FILE with -o FILE (or --out FILE). It is a
go-ucan container holding the delegation; give it to the audience.`,
		Example: `  dms cap grant --to did:key:z6Mk… --cmd /dms/node/peers -o peers.tok
  dms cap grant --to did:key:z6Mk… --cmd /dms/node/deployment --expiry 7d \
      --policy '[["==", ".executor", "docker"]]' -o deploy.tok`,
		Args:              noArgs,
		PersistentPreRunE: outFileHook(a, &f.out),
		RunE: func(*cobra.Command, []string) error {
			if err := f.check("grant"); err != nil {
				return err
			}
			d, err := parseValidity(f.expiry)
			if err != nil {
				return err
			}
			user, err := a.loadKey("user")
			if err != nil {
				return err
			}
			tok, err := cap.Delegate(user, cap.DelegationParams{
				Audience: identity.DID(f.to), Command: f.cmd, Policy: f.policy, Expiry: time.Now().Add(d),
			})
			if err != nil {
				return err
			}
			return a.emitChain(cap.Chain{tok}, f.out)
		},
	}
	f.add(c, "24h")
	return c
}

func newCapDelegateCmd(a *app) *cobra.Command {
	var f tokenFlags
	var from string
	c := &cobra.Command{
		Use:   "delegate --from FILE --to DID --cmd CMD [--expiry D] [--policy EXPR] [-o FILE]",
		Short: "Pass a token you hold on to another DID, narrowed",
		Long: `Re-delegate the token in --from (whose last audience must be this home's user)
to --to, signed by this home's user key. The new delegation may only narrow its
parent: --cmd must be under the parent's command, the expiry (default: the
parent's, else 24h) no later than the parent chain's, and --policy must keep
every statement of the parent's policy (omit it to inherit). The new token
file holds the whole chain.`,
		Example:           `  dms cap delegate --from peers.tok --to did:key:z6Mk… --cmd /dms/node/peers/list -o list.tok`,
		Args:              noArgs,
		PersistentPreRunE: outFileHook(a, &f.out),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return usagef("dms cap delegate: --from FILE is required")
			}
			if err := f.check("delegate"); err != nil {
				return err
			}
			parent, err := readChain(from)
			if err != nil {
				return err
			}
			p := cap.DelegationParams{Audience: identity.DID(f.to), Command: f.cmd, Policy: f.policy}
			if cmd.Flags().Changed("expiry") {
				d, err := parseValidity(f.expiry)
				if err != nil {
					return err
				}
				p.Expiry = time.Now().Add(d)
			} else if !chainExpires(parent) {
				p.Expiry = time.Now().Add(24 * time.Hour)
			}
			user, err := a.loadKey("user")
			if err != nil {
				return err
			}
			chain, err := cap.Redelegate(user, parent, p, time.Now())
			if err != nil {
				return err
			}
			return a.emitChain(chain, f.out)
		},
	}
	f.add(c, "24h")
	c.Flags().StringVar(&from, "from", "", "the token file you received")
	return c
}

func chainExpires(c cap.Chain) bool {
	for _, d := range c {
		if !d.Expiry().IsZero() {
			return true
		}
	}
	return false
}

// emitChain writes or prints a new token file and records it as issued.
func (a *app) emitChain(chain cap.Chain, out string) error {
	text, err := chain.Encode()
	if err != nil {
		return err
	}
	leaf := chain.Leaf()
	res := tokenOutput{
		CID: leaf.CID(), Issuer: leaf.Issuer(), Audience: leaf.Audience(), Subject: leaf.Subject(),
		Cmd: leaf.Command(), Expiry: leaf.Expiry(), Depth: len(chain), Token: text,
	}
	if p := leaf.Policy(); p != "[]" {
		res.Policy = p
	}
	if out != "" {
		if err := os.WriteFile(out, []byte(text+"\n"), 0o600); err != nil {
			return fmt.Errorf("write token file: %w", err)
		}
		res.File = out
	}
	// Remember it for dms cap list and revoke by CID. The token exists
	// whatever happens here, so a busy store is only a note.
	if err := a.withCapState(func(st capState) error { _, err := st.Import(chain, api.SourceIssued); return err }); err != nil {
		fmt.Fprintf(a.stderr, "note: token not recorded in this home's list: %v\n", err)
	}
	return a.print(res, func(w io.Writer) error {
		if out == "" {
			_, err := fmt.Fprintln(w, text)
			return err
		}
		exp := "never"
		if !res.Expiry.IsZero() {
			exp = res.Expiry.Local().Format(time.RFC3339)
		}
		_, err := fmt.Fprintf(w, "wrote %s: token %s\n  %s may invoke %s (root %s), expires %s\n", out, res.CID, res.Audience, res.Cmd, res.Subject, exp)
		return err
	})
}

// readChain reads and decodes a token file.
func readChain(path string) (cap.Chain, error) {
	data, err := readTokenFile(path)
	if err != nil {
		return nil, err
	}
	return cap.DecodeChain(data)
}

func readTokenFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if st.Size() > cap.MaxContainerSize {
		return nil, fmt.Errorf("token file %s is %d bytes, max %d", path, st.Size(), cap.MaxContainerSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return data, nil
}

// verifyOutput is what `dms cap verify -o json` prints on success.
type verifyOutput struct {
	OK     bool         `json:"ok"`
	CID    string       `json:"cid"`
	Cmd    string       `json:"cmd"`
	Holder identity.DID `json:"holder"`
	Root   identity.DID `json:"root"`
	Depth  int          `json:"depth"`
}

func newCapVerifyCmd(a *app) *cobra.Command {
	var cmdName, argsJSON string
	c := &cobra.Command{
		Use:   "verify --cmd CMD [--args JSON] FILE",
		Short: "Check that a token file authorizes a command on this node",
		Long: `Exit 0 when the chain in FILE, used by its final audience, authorizes CMD on
this node: signatures, time bounds, links, command attenuation, policies (over
--args, default none), revocations, and a trusted root for CMD. Otherwise exit 1
and print the rule that failed:

  denied: command-escalation: token bafy…: /dms/node/deployment/new is not under /dms/node/peers`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if cmdName == "" {
				return usagef("dms cap verify: --cmd CMD is required")
			}
			chain, err := readChain(args[0])
			if err != nil {
				return err
			}
			callArgs, err := cap.ArgsFromJSON([]byte(argsJSON))
			if err != nil {
				return usagef("--args: %v", err)
			}
			if err := a.withCapState(func(st capState) error { return st.Verify(chain, cmdName, callArgs) }); err != nil {
				return err
			}
			res := verifyOutput{OK: true, CID: chain.Leaf().CID(), Cmd: cmdName, Holder: chain.Holder(), Root: chain.Root(), Depth: len(chain)}
			return a.print(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "ok: %s may invoke %s here (root %s, %d delegation(s), token %s)\n", res.Holder, res.Cmd, res.Root, res.Depth, res.CID)
				return err
			})
		},
	}
	c.Flags().StringVar(&cmdName, "cmd", "", "the command to check, e.g. /dms/node/peers/list")
	c.Flags().StringVar(&argsJSON, "args", "", "invocation arguments (a JSON object) the policies are checked against")
	return c
}

func newCapListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List trust anchors, known tokens and revocations",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			var l api.CapListing
			err := a.withCapState(func(st capState) error {
				var err error
				l, err = st.List()
				return err
			})
			if err != nil {
				return err
			}
			if l.Anchors == nil {
				l.Anchors = []api.Anchor{}
			}
			if l.Tokens == nil {
				l.Tokens = []api.CapToken{}
			}
			if l.Revocations == nil {
				l.Revocations = []api.Revocation{}
			}
			return a.print(l, func(w io.Writer) error { return writeCapListing(w, l) })
		},
	}
}

func writeCapListing(w io.Writer, l api.CapListing) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ANCHOR ROOT\tCOMMANDS")
	for _, an := range l.Anchors {
		fmt.Fprintf(tw, "%s\t%s\n", an.Root, an.Cmd)
	}
	if len(l.Anchors) == 0 {
		fmt.Fprintln(tw, "(none: this node trusts no one)\t")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TOKEN\tCMD\tISSUER\tAUDIENCE\tEXPIRES\tSOURCE\tSTATE")
	for _, t := range l.Tokens {
		exp := "never"
		if !t.Expiry.IsZero() {
			exp = t.Expiry.Local().Format(time.RFC3339)
		}
		state := "valid"
		switch {
		case t.Revoked:
			state = "revoked"
		case !t.Expiry.IsZero() && time.Now().After(t.Expiry):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.CID, t.Cmd, identity.DID(t.Issuer).Short(), identity.DID(t.Audience).Short(), exp, t.Source, state)
	}
	if len(l.Tokens) == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	if len(l.Revocations) > 0 {
		fmt.Fprintf(tw, "\n%d revocation(s)\n", len(l.Revocations))
	}
	return tw.Flush()
}

// revocationFile is what `dms cap revoke -o json` prints and `dms cap
// import` accepts: a revocation with the chain that proves its authority,
// so that other nodes can verify and record it.
type revocationFile struct {
	Revocation cap.Revocation `json:"revocation"`
	Chain      string         `json:"chain"`
}

func newCapRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke FILE|CID",
		Short: "Revoke a delegation you issued (or one below a delegation you issued)",
		Long: `Revoke the last delegation of the token file FILE, or the known token CID
(see dms cap list), signed by this home's user key. Only the token's issuer, or
the issuer of one of its ancestors in the chain, may revoke it. This node
refuses it from now on; with -o json the signed revocation is printed, and
dms cap import on another node records it there too.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			user, err := a.keystore().DID("user")
			if err != nil {
				return err
			}
			var rf revocationFile
			err = a.withCapState(func(st capState) error {
				chain, target, err := a.revocationTarget(st, args[0])
				if err != nil {
					return err
				}
				// Check the authority before asking for the passphrase.
				if err := cap.CanRevoke(chain, target, user); err != nil {
					return err
				}
				key, err := a.loadKey("user")
				if err != nil {
					return err
				}
				r, err := cap.Revoke(key, chain, target, time.Now())
				if err != nil {
					return err
				}
				if err := st.Revoke(r, chain); err != nil {
					return err
				}
				text, err := chain.Encode()
				rf = revocationFile{Revocation: r, Chain: text}
				return err
			})
			if err != nil {
				return err
			}
			return a.print(rf, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "revoked %s\n", rf.Revocation.CID)
				return err
			})
		},
	}
}

// revocationTarget resolves FILE|CID to the chain through the target and
// the target's CID.
func (a *app) revocationTarget(st capState, arg string) (cap.Chain, string, error) {
	if _, err := os.Stat(arg); err == nil {
		chain, err := readChain(arg)
		if err != nil {
			return nil, "", err
		}
		return chain, chain.Leaf().CID(), nil
	}
	l, err := st.List()
	if err != nil {
		return nil, "", err
	}
	for _, t := range l.Tokens {
		if t.CID != arg {
			continue
		}
		chain, err := cap.DecodeChain([]byte(t.Chain))
		if err != nil {
			return nil, "", fmt.Errorf("known token %s: %w", arg, err)
		}
		upto, ok := chain.Upto(arg)
		if !ok {
			return nil, "", fmt.Errorf("known token %s: its chain does not hold it", arg)
		}
		return upto, arg, nil
	}
	return nil, "", fmt.Errorf("%s is neither a token file nor a known token CID (see dms cap list)", arg)
}

// importOutput is what `dms cap import -o json` prints.
type importOutput struct {
	Token      *api.CapToken   `json:"token,omitempty"`
	Revocation *cap.Revocation `json:"revocation,omitempty"`
}

func newCapImportCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Record a token file (or a revocation from dms cap revoke -o json)",
		Long: `Record the token file FILE in this home's list after checking its signatures
and links (not its trust: see dms cap verify). A revocation file, as printed by
dms cap revoke -o json, is verified and recorded: this node refuses the revoked
token from then on.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			data, err := readTokenFile(args[0])
			if err != nil {
				return err
			}
			var res importOutput
			if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
				var rf revocationFile
				dec := json.NewDecoder(bytes.NewReader(t))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&rf); err != nil {
					return fmt.Errorf("revocation file %s: %w", args[0], err)
				}
				chain, err := cap.DecodeChain([]byte(rf.Chain))
				if err != nil {
					return err
				}
				if err := a.withCapState(func(st capState) error { return st.Revoke(rf.Revocation, chain) }); err != nil {
					return err
				}
				res.Revocation = &rf.Revocation
			} else {
				chain, err := cap.DecodeChain(data)
				if err != nil {
					return err
				}
				if err := chain.CheckLinks(); err != nil {
					return err
				}
				src, err := filepath.Abs(args[0])
				if err != nil {
					return err
				}
				var tok api.CapToken
				if err := a.withCapState(func(st capState) error { tok, err = st.Import(chain, src); return err }); err != nil {
					return err
				}
				res.Token = &tok
			}
			return a.print(res, func(w io.Writer) error {
				if res.Revocation != nil {
					_, err := fmt.Fprintf(w, "recorded the revocation of %s by %s\n", res.Revocation.CID, res.Revocation.Issuer)
					return err
				}
				_, err := fmt.Fprintf(w, "imported %s: %s may invoke %s (root %s)\n", res.Token.CID, res.Token.Audience, res.Token.Cmd, res.Token.Subject)
				return err
			})
		},
	}
}
