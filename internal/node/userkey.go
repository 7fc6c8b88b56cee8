package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
)

// userKeyService implements apiserver.UserKeyService: a deploy from the
// dashboard signs, with the home's user key and the passphrase the user
// typed, the delegations `dms deploy` signs. The key is decrypted for the
// call only; the passphrase is neither kept nor logged.
type userKeyService struct{ n *Node }

func (s userKeyService) DeployChains(_ context.Context, passphrase []byte, ttl time.Duration) ([]string, error) {
	ks := identity.OpenKeystore(filepath.Join(s.n.cfg.Home, "keys"), identity.DefaultKDF)
	user, err := ks.Load("user", passphrase)
	var pe *identity.PassphraseError
	if errors.As(err, &pe) {
		return nil, &apiserver.BadRequest{Err: errors.New("wrong passphrase for the user key")}
	}
	if err != nil {
		return nil, fmt.Errorf("user key: %w", err)
	}
	var chains []string
	for _, cmd := range []string{api.CmdDeployment, api.CmdAllocation} {
		d, err := cap.Delegate(user, cap.DelegationParams{Audience: s.n.cfg.Key.DID(), Command: cmd, Expiry: time.Now().Add(ttl)})
		if err != nil {
			return nil, err
		}
		text, err := cap.Chain{d}.Encode()
		if err != nil {
			return nil, err
		}
		chains = append(chains, text)
	}
	return chains, nil
}
