package cli

import (
	"time"

	"github.com/dmsnet/dms/internal/store"
)

// storePath is the home's embedded store, relative to the home.
const storePath = dataDir + "/dms.db"

// storeTimeout bounds the wait for the store's lock: a running `dms run`
// holds it, and the command fails at once with a clear line.
const storeTimeout = 300 * time.Millisecond

// openStore opens the home's store. It fails with "store … is in use by
// another process (is `dms run` running?)" while a node runs on this home.
func (a *app) openStore() (*store.DB, error) {
	if err := a.requireHome(); err != nil {
		return nil, err
	}
	return store.Open(a.path(storePath), store.Options{Timeout: storeTimeout})
}
