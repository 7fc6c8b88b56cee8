// Package lru is a size-bounded least-recently-used map, safe for
// concurrent use: the caches of decoded and verified tokens, DIDs and keys
// that a node consults at every message keep their last entries in it.
package lru

import (
	"container/list"
	"sync"
)

// Cache is a size-bounded least-recently-used map, safe for concurrent use.
// A size of zero or less disables it (every Get misses).
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	size  int
	items map[K]*list.Element // guarded by mu
	order list.List           // guarded by mu; front is most recent
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

// New returns an empty cache of at most size entries.
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{size: size, items: map[K]*list.Element{}}
}

// Get returns the value kept for k, and makes it the most recent.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Put keeps v for k, dropping the least recent entry when full.
func (c *Cache[K, V]) Put(k K, v V) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	for c.order.Len() > c.size {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*lruEntry[K, V]).key)
	}
}

// Len returns the number of entries kept.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
