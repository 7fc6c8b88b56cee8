package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/atomicfile"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
)

// InitResult is what `dms init -o json` prints.
type InitResult struct {
	Home    string       `json:"home"`
	NodeDID identity.DID `json:"node_did"`
	UserDID identity.DID `json:"user_did"`
}

func newInitCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the home: node key, user key, API token, config",
		Long: `Create the dms home directory (--home, $DMS_HOME, else ~/.dms) with:

  keys/node.key   the node's identity (also its libp2p peer ID), encrypted
  keys/user.key   your user key, which signs what you ask nodes to do, encrypted
  api.token       the secret the CLI shows the node's REST API (mode 0600)
  config.yaml     the configuration, with defaults (see dms config show)

Both keys are encrypted with one passphrase: from $DMS_PASSPHRASE, the file named
by $DMS_PASSPHRASE_FILE, or a prompt. The node trusts the user key for every
/dms command on this node, and nothing else. Running init twice refuses to
overwrite anything.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			res, err := a.initHome()
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "initialised %s\nnode  %s\nuser  %s\n", res.Home, res.NodeDID, res.UserDID)
				return err
			})
		},
	}
}

func (a *app) initHome() (*InitResult, error) {
	ks := a.keystore()
	for _, name := range []string{"node", "user"} {
		if ks.Exists(name) {
			return nil, fmt.Errorf("%s is already initialised (keys/%s.key exists); refusing to overwrite", a.home, name)
		}
	}
	if err := os.MkdirAll(a.home, 0o700); err != nil {
		return nil, fmt.Errorf("create home: %w", err)
	}
	if err := os.MkdirAll(a.path(dataDir), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	pass, err := a.passphrase("node and user", true)
	if err != nil {
		return nil, err
	}
	node, err := ks.Create("node", pass)
	if err != nil {
		return nil, err
	}
	user, err := ks.Create("user", pass)
	if err != nil {
		return nil, err
	}
	if err := writeNew(a.path(apiTokenFile), []byte(newToken()+"\n")); err != nil {
		return nil, fmt.Errorf("write api token: %w", err)
	}
	if _, err := os.Stat(a.path(configFile)); errors.Is(err, os.ErrNotExist) {
		if err := config.Save(a.home, config.Default()); err != nil {
			return nil, fmt.Errorf("write config: %w", err)
		}
	}
	if err := a.initTrust(user.DID()); err != nil {
		return nil, err
	}
	return &InitResult{Home: a.home, NodeDID: node.DID(), UserDID: user.DID()}, nil
}

// newToken returns 256 random bits in hex.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeNew creates path with mode 0600, atomically, refusing to overwrite.
func writeNew(path string, data []byte) error {
	return atomicfile.WriteNew(path, data, 0o600)
}
