package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Layout of a kind on disk: a top-level bucket named after the kind holding
//
//	d            key → JSON record, or 0x01 and the record in the kind's Codec
//	r            key → JSON [[index, value], …], the index entries of the record
//	i/<index>    value 0x00 key → empty
//
// The reverse entries (r) let Put and Delete remove a record's old index
// entries without decoding the old record, and stay right when an index
// function changes between releases (Reindex rebuilds them).
var (
	dataBucket    = []byte("d")
	reverseBucket = []byte("r")
)

func indexBucket(name string) []byte { return []byte("i/" + name) }

// Index derives the strings a record is found by. Empty strings are not
// indexed.
type Index[T any] struct {
	Name   string
	Values func(T) []string
}

// IndexOn is an index on one string derived from the record.
func IndexOn[T any](name string, value func(T) string) Index[T] {
	return Index[T]{Name: name, Values: func(v T) []string { return []string{value(v)} }}
}

// Kind is a named set of records of type T stored as JSON. It is an
// immutable description, safe to share.
type Kind[T any] struct {
	name    string
	key     func(T) string
	indexes map[string]Index[T]
	order   []string  // index names in declaration order
	err     error     // a bad declaration, returned by every operation
	codec   *Codec[T] // nil: JSON
}

// Codec is a kind's own encoding of its records (WithCodec), for records
// written so often that JSON's cost shows. Encode appends v's encoding to
// b; Decode reads what Encode wrote (all of it, strictly).
type Codec[T any] struct {
	Encode func(b []byte, v T) ([]byte, error)
	Decode func(data []byte) (T, error)
}

// codecTag starts a record stored with a kind's Codec: JSON never starts
// with it, so records written as JSON before a kind had a codec still
// decode (as JSON).
const codecTag = 0x01

// WithCodec returns k with its records written in c's encoding (after a
// tag byte) instead of JSON. Records stored as JSON, before, are still
// read. k itself is unchanged.
func (k *Kind[T]) WithCodec(c Codec[T]) *Kind[T] {
	cp := *k
	if c.Encode == nil || c.Decode == nil {
		cp.err = fmt.Errorf("store kind %q: codec without an encoder or a decoder", k.name)
	}
	cp.codec = &c
	return &cp
}

// encode is v's stored form.
func (k *Kind[T]) encode(v T) ([]byte, error) {
	if k.codec == nil {
		return json.Marshal(v)
	}
	return k.codec.Encode([]byte{codecTag}, v)
}

// decode decodes a stored record: in the kind's codec when it starts with
// codecTag, else JSON.
func (k *Kind[T]) decode(key string, data []byte) (T, error) {
	if k.codec == nil || len(data) == 0 || data[0] != codecTag {
		return decodeRecord[T](k.name, key, data)
	}
	v, err := k.codec.Decode(data[1:])
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%w: record %s/%s: %v", ErrCorrupt, k.name, key, err)
	}
	return v, nil
}

// NewKind declares a kind. key derives the record's key (non-empty). A bad
// declaration (empty or reserved name, duplicate index) is reported by
// every operation on the kind.
func NewKind[T any](name string, key func(T) string, indexes ...Index[T]) *Kind[T] {
	k := &Kind[T]{name: name, key: key, indexes: map[string]Index[T]{}}
	switch {
	case name == "" || strings.HasPrefix(name, "_"):
		k.err = fmt.Errorf("store kind %q: name must be non-empty and not start with _", name)
	case key == nil:
		k.err = fmt.Errorf("store kind %q: key function is nil", name)
	}
	for _, ix := range indexes {
		if _, dup := k.indexes[ix.Name]; dup || ix.Name == "" || ix.Values == nil {
			k.err = fmt.Errorf("store kind %q: index %q is empty, nil or declared twice", name, ix.Name)
			continue
		}
		k.indexes[ix.Name] = ix
		k.order = append(k.order, ix.Name)
	}
	return k
}

// Name returns the kind's name.
func (k *Kind[T]) Name() string { return k.name }

// indexEntry is one (index, value) pair of a record.
type indexEntry [2]string

func (k *Kind[T]) entries(v T) ([]indexEntry, error) {
	var out []indexEntry
	for _, name := range k.order {
		seen := map[string]bool{}
		for _, val := range k.indexes[name].Values(v) {
			if val == "" || seen[val] {
				continue
			}
			if strings.IndexByte(val, 0) >= 0 {
				return nil, fmt.Errorf("index %s value %q holds a NUL byte", name, val)
			}
			seen[val] = true
			out = append(out, indexEntry{name, val})
		}
	}
	return out, nil
}

func indexKey(value, key string) []byte {
	b := make([]byte, 0, len(value)+1+len(key))
	b = append(b, value...)
	b = append(b, 0)
	return append(b, key...)
}

// splitIndexKey splits an index entry key into its value and record key.
func splitIndexKey(b []byte) (value, key string, err error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", fmt.Errorf("%w: index entry %q has no separator", ErrCorrupt, b)
	}
	return string(b[:i]), string(b[i+1:]), nil
}

// decodeRecord decodes a stored record.
func decodeRecord[T any](kind, key string, data []byte) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: record %s/%s: %v", ErrCorrupt, kind, key, err)
	}
	return v, nil
}

// decodeEntries decodes a record's stored index entries.
func decodeEntries(kind, key string, data []byte) ([]indexEntry, error) {
	var es []indexEntry
	if err := json.Unmarshal(data, &es); err != nil {
		return nil, fmt.Errorf("%w: index entries of %s/%s: %v", ErrCorrupt, kind, key, err)
	}
	return es, nil
}

// buckets returns the kind's top bucket and data bucket; with create they
// are created, else nil when absent.
func (k *Kind[T]) buckets(tx *Tx, create bool) (top, data *bolt.Bucket, err error) {
	if k.err != nil {
		return nil, nil, k.err
	}
	if !create {
		top = tx.tx.Bucket([]byte(k.name))
		if top == nil {
			return nil, nil, nil
		}
		return top, top.Bucket(dataBucket), nil
	}
	if !tx.Writable() {
		return nil, nil, fmt.Errorf("store kind %s: write in a read-only transaction", k.name)
	}
	if top, err = tx.tx.CreateBucketIfNotExists([]byte(k.name)); err != nil {
		return nil, nil, err
	}
	if data, err = top.CreateBucketIfNotExists(dataBucket); err != nil {
		return nil, nil, err
	}
	return top, data, nil
}

func (k *Kind[T]) checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("store kind %s: empty key", k.name)
	}
	if len(key) > bolt.MaxKeySize/2 {
		return fmt.Errorf("store kind %s: key is %d bytes, max %d", k.name, len(key), bolt.MaxKeySize/2)
	}
	return nil
}

// Put inserts or replaces v (by its key) and its index entries.
func (k *Kind[T]) Put(tx *Tx, v T) error {
	key := k.key(v)
	if err := k.put(tx, key, v); err != nil {
		return fmt.Errorf("put %s/%s: %w", k.name, key, err)
	}
	return nil
}

func (k *Kind[T]) put(tx *Tx, key string, v T) error {
	if err := k.checkKey(key); err != nil {
		return err
	}
	data, err := k.encode(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	es, err := k.entries(v)
	if err != nil {
		return err
	}
	top, db, err := k.buckets(tx, true)
	if err != nil {
		return err
	}
	if err := k.unindex(top, key); err != nil {
		return err
	}
	if err := db.Put([]byte(key), data); err != nil {
		return err
	}
	return k.index(top, key, es)
}

func (k *Kind[T]) index(top *bolt.Bucket, key string, es []indexEntry) error {
	if len(es) == 0 {
		return nil
	}
	for _, e := range es {
		if len(e[1])+1+len(key) > bolt.MaxKeySize {
			return fmt.Errorf("index %s value is too long (%d bytes)", e[0], len(e[1]))
		}
		ib, err := top.CreateBucketIfNotExists(indexBucket(e[0]))
		if err != nil {
			return err
		}
		if err := ib.Put(indexKey(e[1], key), nil); err != nil {
			return err
		}
	}
	rb, err := top.CreateBucketIfNotExists(reverseBucket)
	if err != nil {
		return err
	}
	data, err := json.Marshal(es)
	if err != nil {
		return err
	}
	return rb.Put([]byte(key), data)
}

// unindex removes the index entries of the record stored under key.
func (k *Kind[T]) unindex(top *bolt.Bucket, key string) error {
	rb := top.Bucket(reverseBucket)
	if rb == nil {
		return nil
	}
	old := rb.Get([]byte(key))
	if old == nil {
		return nil
	}
	es, err := decodeEntries(k.name, key, old)
	if err != nil {
		return err
	}
	for _, e := range es {
		if ib := top.Bucket(indexBucket(e[0])); ib != nil {
			if err := ib.Delete(indexKey(e[1], key)); err != nil {
				return err
			}
		}
	}
	return rb.Delete([]byte(key))
}

// Get returns the record with key, or an error wrapping ErrNotFound.
func (k *Kind[T]) Get(tx *Tx, key string) (T, error) {
	var zero T
	_, db, err := k.buckets(tx, false)
	if err != nil {
		return zero, err
	}
	var data []byte
	if db != nil {
		data = db.Get([]byte(key))
	}
	if data == nil {
		return zero, fmt.Errorf("%s %q: %w", k.name, key, ErrNotFound)
	}
	return k.decode(key, data)
}

// Delete removes the record with key and its index entries; it returns an
// error wrapping ErrNotFound when there is none.
func (k *Kind[T]) Delete(tx *Tx, key string) error {
	top, db, err := k.buckets(tx, true)
	if err != nil {
		return err
	}
	if db.Get([]byte(key)) == nil {
		return fmt.Errorf("delete %s %q: %w", k.name, key, ErrNotFound)
	}
	if err := k.unindex(top, key); err != nil {
		return fmt.Errorf("delete %s/%s: %w", k.name, key, err)
	}
	return db.Delete([]byte(key))
}

// List returns the records whose key starts with prefix ("" for all), in
// key order.
func (k *Kind[T]) List(tx *Tx, prefix string) ([]T, error) {
	_, db, err := k.buckets(tx, false)
	if err != nil || db == nil {
		return nil, err
	}
	var out []T
	p := []byte(prefix)
	c := db.Cursor()
	for key, val := c.Seek(p); key != nil && bytes.HasPrefix(key, p); key, val = c.Next() {
		v, err := k.decode(string(key), val)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Find returns the records whose index has value, in key order.
func (k *Kind[T]) Find(tx *Tx, index, value string) ([]T, error) {
	keys, err := k.FindKeys(tx, index, value)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(keys))
	for _, key := range keys {
		v, err := k.Get(tx, key)
		if err != nil {
			return nil, fmt.Errorf("find %s by %s=%q: %w", k.name, index, value, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// FindKeys returns the keys of the records whose index has value, in key
// order, without decoding them.
func (k *Kind[T]) FindKeys(tx *Tx, index, value string) ([]string, error) {
	if k.err != nil {
		return nil, k.err
	}
	if _, ok := k.indexes[index]; !ok {
		return nil, fmt.Errorf("store kind %s has no index %q", k.name, index)
	}
	top, _, err := k.buckets(tx, false)
	if err != nil || top == nil {
		return nil, err
	}
	ib := top.Bucket(indexBucket(index))
	if ib == nil {
		return nil, nil
	}
	var keys []string
	p := indexKey(value, "")
	c := ib.Cursor()
	for ik, _ := c.Seek(p); ik != nil && bytes.HasPrefix(ik, p); ik, _ = c.Next() {
		_, key, err := splitIndexKey(ik)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// Reindex rebuilds every index entry of the kind from the stored records,
// for a migration after an index was added or changed.
func (k *Kind[T]) Reindex(tx *Tx) error {
	top, db, err := k.buckets(tx, true)
	if err != nil {
		return err
	}
	for _, name := range append([]string{string(reverseBucket)}, k.indexNamesOnDisk(top)...) {
		if err := top.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
	}
	return db.ForEach(func(key, val []byte) error {
		v, err := k.decode(string(key), val)
		if err != nil {
			return err
		}
		es, err := k.entries(v)
		if err != nil {
			return fmt.Errorf("reindex %s/%s: %w", k.name, key, err)
		}
		return k.index(top, string(key), es)
	})
}

func (k *Kind[T]) indexNamesOnDisk(top *bolt.Bucket) []string {
	var names []string
	top.ForEachBucket(func(name []byte) error {
		if bytes.HasPrefix(name, []byte("i/")) {
			names = append(names, string(name))
		}
		return nil
	})
	return names
}

// DeleteKind removes every record and index of the kind named name (for a
// migration that retires a kind). Deleting an absent kind is not an error.
func (tx *Tx) DeleteKind(name string) error {
	err := tx.tx.DeleteBucket([]byte(name))
	if err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return fmt.Errorf("delete kind %s: %w", name, err)
	}
	return nil
}
