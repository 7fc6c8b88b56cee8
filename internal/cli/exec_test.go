package cli

import (
	"context"
	"strings"
	"testing"
)

func TestExecArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no command", args: []string{"deployment", "exec", "d1", "web"}, want: "needs a deployment, an allocation and a command, got 2"},
		{name: "dash too early", args: []string{"deployment", "exec", "d1", "--", "web", "sh"}, want: "put -- right after the allocation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := Main(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
			if code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), exitUsage, tc.want)
			}
		})
	}
}
