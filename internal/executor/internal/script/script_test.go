package script

import (
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	got, err := Parse([]string{"print=a=b", "eprint=", "sleep=1s", "spin=2s", "tick=3x10ms", "exit=4", "alloc=64", "write=/out/f:x:y", "cat=/in/f", "env=HOME", "pwd", "spawn=5"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Op: Print, Text: "a=b"}, {Op: EPrint}, {Op: Sleep, D: time.Second}, {Op: Spin, D: 2 * time.Second}, {Op: Tick, N: 3, D: 10 * time.Millisecond},
		{Op: Exit, N: 4}, {Op: Alloc, N: 64}, {Op: Write, Path: "/out/f", Text: "x:y"}, {Op: Cat, Path: "/in/f"},
		{Op: Env, Text: "HOME"}, {Op: Pwd}, {Op: Spawn, N: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"explode", "sleep=soon", "tick=3", "exit=x", "write=nocolon", "cat=", "env=", "pwd=/x"} {
		if _, err := Parse([]string{bad}); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}
