package lru

import "testing"

func TestCache(t *testing.T) {
	c := New[string, int](2)
	c.Put("a", 1)
	c.Put("b", 2)
	if v, ok := c.Get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatalf("Get(a) = %d, %v; want 1", v, ok)
	}
	c.Put("c", 3) // drops b, the least recent
	if _, ok := c.Get("b"); ok {
		t.Error("b kept past the bound; want the least recent dropped")
	}
	for k, want := range map[string]int{"a": 1, "c": 3} {
		if v, ok := c.Get(k); !ok || v != want {
			t.Errorf("Get(%s) = %d, %v; want %d", k, v, ok, want)
		}
	}
	c.Put("a", 10)
	if v, _ := c.Get("a"); v != 10 || c.Len() != 2 {
		t.Errorf("after a second Put(a): %d, %d entries; want 10, 2", v, c.Len())
	}

	off := New[string, int](0)
	off.Put("a", 1)
	if _, ok := off.Get("a"); ok || off.Len() != 0 {
		t.Error("a cache of size 0 kept an entry")
	}
}
