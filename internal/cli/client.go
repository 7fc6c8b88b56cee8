package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/dmsnet/dms/api"
)

// client returns an API client for the home's running node: the address
// from --api, else <home>/api.addr (written by `dms run`), and the token
// from <home>/api.token.
func (a *app) client() (*api.Client, error) {
	addr := a.apiAddr
	if addr == "" {
		data, err := os.ReadFile(a.path(apiAddrFile))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no running node for %s: start one with `dms --home %s run` (or pass --api ADDR)", a.home, a.home)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", apiAddrFile, err)
		}
		addr = strings.TrimSpace(string(data))
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	return api.NewClient(api.ClientConfig{Addr: addr, Token: token})
}
