package node

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
)

func TestUserKeyDeployChains(t *testing.T) {
	home := t.TempDir()
	ks := identity.OpenKeystore(filepath.Join(home, "keys"), identity.DefaultKDF)
	user, err := ks.Create("user", []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s := userKeyService{&Node{cfg: Config{Home: home, Key: nodeKey}}}

	texts, err := s.DeployChains(context.Background(), []byte("right"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{api.CmdDeployment, api.CmdAllocation}
	if len(texts) != len(want) {
		t.Fatalf("DeployChains = %d chains, want %d", len(texts), len(want))
	}
	for i, text := range texts {
		c, err := cap.DecodeChain([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckLinks(); err != nil {
			t.Fatal(err)
		}
		d := c[len(c)-1]
		if c.Root() != user.DID() || d.Audience() != nodeKey.DID() || d.Command() != want[i] {
			t.Errorf("chain %d: root %s, audience %s, command %s; want %s, %s, %s", i, c.Root(), d.Audience(), d.Command(), user.DID(), nodeKey.DID(), want[i])
		}
	}

	_, err = s.DeployChains(context.Background(), []byte("wrong"), time.Hour)
	var br *apiserver.BadRequest
	if !errors.As(err, &br) || br.Error() != "wrong passphrase for the user key" {
		t.Errorf("wrong passphrase: %v, want a BadRequest", err)
	}
	if _, err := (userKeyService{&Node{cfg: Config{Home: t.TempDir(), Key: nodeKey}}}).DeployChains(context.Background(), []byte("right"), time.Hour); err == nil {
		t.Error("a home without a user key signed chains")
	}
}
