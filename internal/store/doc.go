// Package store is the node's embedded ACID store: typed record kinds on
// bbolt, with secondary indexes, multi-kind transactions and versioned
// migrations.
//
// A kind is a named set of records of one Go type, JSON-encoded, keyed by a
// string the kind derives from the record. Indexes name a field (or any
// derived strings) that Find searches on. A kind whose records are written
// so often that JSON's cost shows may have a Codec of its own
// (Kind.WithCodec); the records it wrote as JSON before are still read.
//
// Usage:
//
//	type Deployment struct{ ID, State, Owner string }
//
//	var deployments = store.NewKind("deployments",
//		func(d Deployment) string { return d.ID },
//		store.IndexOn("state", func(d Deployment) string { return d.State }),
//	)
//
//	db, err := store.Open(path, store.Options{Migrations: myMigrations})
//	defer db.Close()
//	err = db.Update(func(tx *store.Tx) error {
//		return deployments.Put(tx, Deployment{ID: "d1", State: "running"})
//	})
//	err = db.View(func(tx *store.Tx) error {
//		d, err := deployments.Get(tx, "d1")         // ErrNotFound if absent
//		running, err := deployments.Find(tx, "state", "running")
//		some, err := deployments.List(tx, "d")      // by key prefix, in key order
//		...
//	})
//
// One Update is one bbolt transaction: writes to several kinds in it commit
// together or not at all, and a commit that returned nil survives kill -9
// (bbolt fsyncs every commit).
//
// Migrations are numbered per component ("cap", "orchestrator", …). Open
// runs the pending ones of Options.Migrations in order, each in its own
// transaction together with its version bump; a package that opens its
// state later calls DB.Migrate with its own list. A store written by a newer
// dms (a version this binary does not know) is refused.
//
// Concurrency: a DB is safe for concurrent use; many View transactions run
// in parallel with one Update. A Tx must not be used outside the function
// it was passed to. Only one process may open the file: Open fails with
// ErrInUse after Options.Timeout when another process (a running
// `dms run`) holds it.
package store
