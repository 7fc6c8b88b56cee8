package script

import (
	"os"
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	got, err := Parse([]string{"print=a=b", "eprint=", "sleep=1s", "spin=2s", "tick=3x10ms", "exit=4", "alloc=64", "write=/out/f:x:y", "cat=/in/f", "env=HOME", "pwd", "spawn=5", "append=/d/log:started", "fill=/d/big:3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Op: Print, Text: "a=b"}, {Op: EPrint}, {Op: Sleep, D: time.Second}, {Op: Spin, D: 2 * time.Second}, {Op: Tick, N: 3, D: 10 * time.Millisecond},
		{Op: Exit, N: 4}, {Op: Alloc, N: 64}, {Op: Write, Path: "/out/f", Text: "x:y"}, {Op: Cat, Path: "/in/f"},
		{Op: Env, Text: "HOME"}, {Op: Pwd}, {Op: Spawn, N: 5},
		{Op: Append, Path: "/d/log", Text: "started"}, {Op: Fill, Path: "/d/big", N: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"explode", "sleep=soon", "tick=3", "exit=x", "write=nocolon", "cat=", "env=", "pwd=/x", "append=x", "fill=/x", "fill=/x:many", "fill=:3"} {
		if _, err := Parse([]string{bad}); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestAppendAndFill(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		if err := AppendLine(dir+"/log", "started"); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(dir + "/log"); string(b) != "started\nstarted\n" {
		t.Fatalf("log %q", b)
	}
	if err := FillFile(dir+"/big", 2); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir + "/big"); err != nil || fi.Size() != 2<<20 {
		t.Fatalf("big: %v %v", fi, err)
	}
	if err := FillFile(dir+"/no/such/dir", 1); err == nil {
		t.Fatal("filled a file in a missing directory")
	}
}
